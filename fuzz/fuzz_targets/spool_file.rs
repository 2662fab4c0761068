//! Spool file decoding as `Spool::load` does it. The first byte chooses the input's shape: a whole file
//! (header, CRC and all), or a body behind a correct header, so that the zstd and id checks are reached
//! rather than stopped by the CRC.
#![no_main]

use callhome_agent::fuzzing::{spool_file, spool_file_with_body};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(record) = spool_file(rest) {
            assert_eq!(rest.len(), 36 + record.body.len());
        }
    } else {
        let id = Uuid::from_u128(0x019ac4f0_1c2d_7a3b_8c4d_5e6f708192a3);
        if let Ok(record) = spool_file_with_body(id, u64::from(mode), rest) {
            assert_eq!(record.id, id);
            assert_eq!(record.body, rest);
        }
    }
});

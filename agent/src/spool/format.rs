//! The bytes of one spool file (format version 1), all integers little-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "CHSPOOL\x01" (the last byte is the format version)
//!      8     4  CRC-32 (IEEE, as zlib and gzip) of every byte from offset 12 to the end
//!     12     8  dropped mark: the agent's count of dropped snapshots when this one was taken
//!     20    16  snapshot id (UUIDv7, big-endian as in RFC 9562)
//!     36     …  the request body: the snapshot's JSON, zstd-compressed, exactly as it is POSTed
//! ```
//!
//! The CRC catches torn and bit-flipped files; decoding the body as a snapshot whose id matches
//! catches the rest (a file written by a buggy agent). Either failure quarantines the file.

use uuid::Uuid;

pub const MAGIC: &[u8; 8] = b"CHSPOOL\x01";
const HEADER_LEN: usize = 36;

/// A spool file's content, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: Uuid,
    pub dropped_mark: u64,
    /// zstd-compressed snapshot JSON.
    pub body: Vec<u8>,
}

pub fn encode(id: Uuid, dropped_mark: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&dropped_mark.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[12..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks and splits a spool file. The error says why the file cannot be delivered, for the
/// quarantine's reason file.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    let (magic, rest) = bytes.split_at(8);
    if magic != MAGIC {
        return Err(if magic.starts_with(&MAGIC[..7]) {
            format!("unknown spool format version {}", magic[7])
        } else {
            "not a spool file (bad magic)".to_string()
        });
    }
    let (crc, rest) = rest.split_at(4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(rest);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the file is damaged"
        ));
    }
    let (mark, rest) = rest.split_at(8);
    let mut mark_bytes = [0u8; 8];
    mark_bytes.copy_from_slice(mark);
    let (id, body) = rest.split_at(16);
    let mut id_bytes = [0u8; 16];
    id_bytes.copy_from_slice(id);
    Ok(Record {
        id: Uuid::from_bytes(id_bytes),
        dropped_mark: u64::from_le_bytes(mark_bytes),
        body: body.to_vec(),
    })
}

/// Decompresses a record's body and checks that it is JSON naming the snapshot the header names.
/// Whether the snapshot is valid is the collector's call (an upgraded collector may accept what this
/// agent's schema does not): a body it refuses comes back as 400 or 422 and is quarantined then.
pub fn verify_body(record: &Record, max_decompressed: u64) -> Result<(), String> {
    use std::io::Read;

    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Uuid,
    }

    let mut json = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(record.body.as_slice())
        .map_err(|e| format!("cannot start decompression: {e}"))?;
    decoder
        .take(max_decompressed + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("body is not valid zstd: {e}"))?;
    if json.len() as u64 > max_decompressed {
        return Err(format!("body inflates beyond {max_decompressed} bytes"));
    }
    let named: IdOnly =
        serde_json::from_slice(&json).map_err(|e| format!("body is not a snapshot's JSON: {e}"))?;
    if named.id != record.id {
        return Err(format!(
            "body holds snapshot {} but the header names {}",
            named.id, record.id
        ));
    }
    Ok(())
}

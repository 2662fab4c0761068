//! Reading an untrusted request body within limits: the body as sent is read through
//! `http_body_util::Limited`, and decompression reads through `take(limit + 1)`, so a compression bomb
//! stops inflating one byte past the limit instead of filling memory.

use std::io::Read;

use axum::body::{Body, Bytes};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Zstd,
    Gzip,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("Content-Encoding `{0}` is not supported: send identity, zstd or gzip")]
    UnsupportedEncoding(String),
    #[error("Content-Type `{0}` is not supported: send application/json")]
    UnsupportedMediaType(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body decompresses to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("cannot decompress the {encoding} body: {message}")]
    CorruptEncoding { encoding: &'static str, message: String },
    #[error("cannot read the request body: {0}")]
    Read(String),
}

impl ContentEncoding {
    /// The body's encoding from `Content-Encoding`; one coding only (no stacked `gzip, zstd`).
    pub fn from_headers(headers: &HeaderMap) -> Result<ContentEncoding, IngestError> {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return Ok(ContentEncoding::Identity);
        };
        let text = value
            .to_str()
            .map_err(|_| {
                IngestError::UnsupportedEncoding(String::from_utf8_lossy(value.as_bytes()).into_owned())
            })?
            .trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(ContentEncoding::Identity),
            "zstd" => Ok(ContentEncoding::Zstd),
            "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
            _ => Err(IngestError::UnsupportedEncoding(text.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Zstd => "zstd",
            ContentEncoding::Gzip => "gzip",
        }
    }
}

/// Accepts a missing `Content-Type` or `application/json` with any parameters.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(text.trim().to_owned()))
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes (or declares more).
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(IngestError::BodyTooLarge { limit }),
        Err(e) => Err(IngestError::Read(e.to_string())),
    }
}

/// Decompresses `data`, producing at most `limit` bytes. Blocking and CPU-bound: call it from
/// `spawn_blocking`.
pub fn decompress(encoding: ContentEncoding, data: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let corrupt = |e: std::io::Error| IngestError::CorruptEncoding {
        encoding: encoding.name(),
        message: e.to_string(),
    };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    match encoding {
        ContentEncoding::Identity => {
            if data.len() > limit {
                return Err(IngestError::DecompressedTooLarge { limit });
            }
            return Ok(data.to_vec());
        }
        ContentEncoding::Zstd => {
            // Bound the window the frame may ask for (and so the decoder's memory) by the output limit:
            // a window larger than the largest acceptable output is never needed.
            let window_log = window_log_for(limit);
            out.reserve(data.len().saturating_mul(4).min(limit));
            with_dctx(|dctx| {
                // A context from this thread's last body: drop that session, keep the allocation.
                dctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                    .and_then(|_| dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(window_log)))
                    .map_err(|code| corrupt(std::io::Error::other(zstd::zstd_safe::get_error_name(code))))?;
                zstd::stream::read::Decoder::with_context(data, dctx)
                    .take(cap)
                    .read_to_end(&mut out)
                    .map_err(|e| {
                        let mut e = corrupt(e);
                        if let IngestError::CorruptEncoding { message, .. } = &mut e
                            && message.contains("too much memory")
                        {
                            message.push_str(&format!(
                                " (the frame's window is over 2^{window_log} bytes: compress at level 19 or lower)"
                            ));
                        }
                        e
                    })
            })?;
        }
        ContentEncoding::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out)
                .map_err(corrupt)?;
        }
    }
    if out.len() > limit {
        return Err(IngestError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// Runs `f` with this thread's zstd decompression context. Making one per body allocated and
/// zeroed its tables every time, a visible share of ingest CPU; a context is reused safely once its
/// session is reset.
fn with_dctx<T>(f: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> T) -> T {
    thread_local! {
        static DCTX: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
            std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
    }
    DCTX.with(|cell| match cell.try_borrow_mut() {
        Ok(mut dctx) => f(&mut dctx),
        // Not reentrant in practice; a fresh context keeps it correct if it ever is.
        Err(_) => f(&mut zstd::zstd_safe::DCtx::create()),
    })
}

/// The largest zstd window (log2) a frame may ask for. A window beyond the output limit is never
/// needed, but streaming encoders pick their window from the level, not the input (8 MiB = 2^23 up to
/// level 19), so allow at least that; 27 (128 MiB) is zstd's own default maximum and ours too. Only
/// `--ultra` levels (20+) with a small limit are refused.
fn window_log_for(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(23, 27)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: http::header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn encodings() {
        assert_eq!(
            ContentEncoding::from_headers(&HeaderMap::new()),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_headers(&headers(CONTENT_ENCODING, "ZSTD")),
            Ok(ContentEncoding::Zstd)
        );
        assert_eq!(
            ContentEncoding::from_headers(&headers(CONTENT_ENCODING, "gzip")),
            Ok(ContentEncoding::Gzip)
        );
        assert_eq!(
            ContentEncoding::from_headers(&headers(CONTENT_ENCODING, "br")),
            Err(IngestError::UnsupportedEncoding("br".into()))
        );
    }

    #[test]
    fn content_types() {
        assert!(check_json_content_type(&HeaderMap::new()).is_ok());
        assert!(check_json_content_type(&headers(CONTENT_TYPE, "application/json; charset=utf-8")).is_ok());
        assert!(check_json_content_type(&headers(CONTENT_TYPE, "text/plain")).is_err());
    }

    #[test]
    fn zstd_and_gzip_round_trip() {
        let data = b"{\"a\":1}".repeat(100);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decompress(ContentEncoding::Zstd, &z, 1 << 20).unwrap(), data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(ContentEncoding::Gzip, &gz, 1 << 20).unwrap(), data);
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let z = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(z.len() < 4096, "{}", z.len());
        assert_eq!(
            decompress(ContentEncoding::Zstd, &z, 1 << 20),
            Err(IngestError::DecompressedTooLarge { limit: 1 << 20 })
        );
        // Exactly at the limit is fine.
        assert_eq!(
            decompress(ContentEncoding::Zstd, &z, 8 << 20).unwrap().len(),
            8 << 20
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        assert!(matches!(
            decompress(ContentEncoding::Zstd, b"not zstd at all", 1024),
            Err(IngestError::CorruptEncoding { .. })
        ));
        assert!(matches!(
            decompress(ContentEncoding::Gzip, b"not gzip at all", 1024),
            Err(IngestError::CorruptEncoding { .. })
        ));
    }

    #[test]
    fn window_log() {
        assert_eq!(window_log_for(16 << 20), 24);
        assert_eq!(window_log_for((16 << 20) + 1), 25);
        assert_eq!(window_log_for(1), 23);
        assert_eq!(window_log_for(usize::MAX), 27);
    }
}

//! The state directory (default `/var/lib/callhome`): what the agent keeps across runs.
//!
//! - `host_id`: this host's UUID, made once and kept, so the collector sees one host across restarts.
//! - `enrollment.json`: the credential and where it is valid (mode 0600; refused when others can read
//!   it, since the credential is a bearer secret).
//! - `collector-ca.pem`: a copy of the CA file given at enrollment, so `send` trusts the same roots.
//! - `collector-pins`: the public-key pins given at enrollment (`enroll --pin`), one per line, so
//!   `send` and `run` pin the same keys.
//! - `client-identity.pem`: the client certificate the collector signed and its private key, made
//!   here (mode 0600; refused like the enrollment when others can read it). See `client_cert`.
//!
//! A secret file (the enrollment, the client key, the redaction key) is refused when its mode lets group or others
//! read it, or when another user owns it (that user could swap the credential or the collector URL
//! in it); root may own it, since root can read and replace it anyway.
//!
//! Every file is written atomically (temporary file in the same directory, fsync, rename, fsync of the
//! directory): a crash leaves the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client_cert::ClientIdentity;
use crate::pin::Pin;

const HOST_ID_FILE: &str = "host_id";
const ENROLLMENT_FILE: &str = "enrollment.json";
const COLLECTOR_CA_FILE: &str = "collector-ca.pem";
const COLLECTOR_PINS_FILE: &str = "collector-pins";
const CLIENT_IDENTITY_FILE: &str = "client-identity.pem";

/// Why a secret file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exposure {
    #[error("readable by group or others (mode {mode:04o})")]
    Mode { mode: u32 },
    #[error("owned by uid {owner}, not by the agent's user (uid {user})")]
    Owner { owner: u32, user: u32 },
}

impl Exposure {
    /// The command that fixes it.
    pub fn fix(&self, path: &Path) -> String {
        match self {
            Exposure::Mode { .. } => format!("run `chmod 600 {}`", path.display()),
            Exposure::Owner { user, .. } => format!(
                "run `chown {user} {p} && chmod 600 {p}`, or run the agent as the file's owner",
                p = path.display()
            ),
        }
    }
}

/// Whether a file with this mode and owner may hold a secret of the process running as `user`.
pub fn exposure(mode: u32, owner: u32, user: u32) -> Option<Exposure> {
    if owner != user && owner != 0 {
        return Some(Exposure::Owner { owner, user });
    }
    (mode & 0o077 != 0).then_some(Exposure::Mode { mode: mode & 0o7777 })
}

/// Checks an open secret file: its mode and owner (see [`exposure`]).
pub fn check_private(file: &File) -> io::Result<Option<Exposure>> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok(exposure(
        meta.mode(),
        meta.uid(),
        rustix::process::geteuid().as_raw(),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("not enrolled: run `callhome-agent enroll` (no {})", path.display())]
    NotEnrolled { path: PathBuf },
    #[error(
        "{} is {exposure}; it holds the agent {holds}: {}",
        path.display(),
        exposure.fix(path)
    )]
    Exposed {
        path: PathBuf,
        exposure: Exposure,
        /// What the file holds: "credential", "client certificate's private key".
        holds: &'static str,
    },
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
}

impl StateError {
    /// The sysexits code a command ends with on this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StateError::Io { .. } => crate::exit::IOERR,
            _ => crate::exit::CONFIG,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What `enroll` obtained, as stored in `enrollment.json`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// Bearer secret for `/v1/snapshots`. Never logged: `Debug` leaves it out.
    pub credential: String,
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
    pub collector_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("credential", &"<redacted>")
            .field("host_id", &self.host_id)
            .field("org", &self.org)
            .field("environment", &self.environment)
            .field("collector_url", &self.collector_url)
            .field("enrolled_at", &self.enrolled_at)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn enrollment_path(&self) -> PathBuf {
        self.path.join(ENROLLMENT_FILE)
    }

    pub fn collector_ca_path(&self) -> PathBuf {
        self.path.join(COLLECTOR_CA_FILE)
    }

    /// Creates the directory (mode 0700) if needed.
    fn ensure_dir(&self) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io_err(&self.path))
    }

    /// This host's id: read from `host_id`, or made and saved on first use.
    pub fn host_id(&self) -> Result<Uuid, StateError> {
        let path = self.path.join(HOST_ID_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Uuid::parse_str(text.trim()).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: format!("not a UUID ({e}); delete it to make a new host id"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_dir()?;
                let id = Uuid::new_v4();
                write_atomic(&path, format!("{id}\n").as_bytes(), 0o644)?;
                tracing::info!(%id, path = %path.display(), "made a new host id");
                Ok(id)
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The host id, or a fresh one for this run only when the state directory cannot hold it (for
    /// example `collect` run by a user who cannot write `/var/lib/callhome`).
    pub fn host_id_or_ephemeral(&self) -> Uuid {
        match self.host_id() {
            Ok(id) => id,
            Err(error) => {
                let id = Uuid::new_v4();
                tracing::warn!(%error, %id, "cannot keep a host id in the state directory: using an ephemeral one for this run");
                id
            }
        }
    }

    pub fn save_enrollment(&self, enrollment: &Enrollment) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.enrollment_path();
        let json = serde_json::to_vec_pretty(enrollment).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &json, 0o600)
    }

    pub fn load_enrollment(&self) -> Result<Enrollment, StateError> {
        let path = self.enrollment_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotEnrolled { path });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if let Some(exposure) = check_private(&file).map_err(io_err(&path))? {
            return Err(StateError::Exposed {
                path,
                exposure,
                holds: "credential",
            });
        }
        serde_json::from_reader(io::BufReader::new(file)).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: format!("{e}; run `callhome-agent enroll` again"),
        })
    }

    /// Keeps a copy of the CA bundle trusted at enrollment, or removes a stale copy when enrollment
    /// used the system roots.
    pub fn save_collector_ca(&self, pem: Option<&[u8]>) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.collector_ca_path();
        match pem {
            Some(pem) => write_atomic(&path, pem, 0o644),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                _ => Ok(()),
            },
        }
    }

    /// The CA copy made at enrollment, if there is one.
    pub fn collector_ca(&self) -> Option<PathBuf> {
        let path = self.collector_ca_path();
        path.is_file().then_some(path)
    }

    pub fn collector_pins_path(&self) -> PathBuf {
        self.path.join(COLLECTOR_PINS_FILE)
    }

    /// Keeps the pins given at enrollment, or removes a stale file when enrollment gave none.
    pub fn save_collector_pins(&self, pins: &[Pin]) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.collector_pins_path();
        if pins.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                _ => Ok(()),
            };
        }
        let text: String = pins.iter().map(|p| format!("{p}\n")).collect();
        write_atomic(&path, text.as_bytes(), 0o644)
    }

    pub fn client_identity_path(&self) -> PathBuf {
        self.path.join(CLIENT_IDENTITY_FILE)
    }

    /// Keeps the client certificate and its key (mode 0600), or removes a stale file when the
    /// collector issued none.
    pub fn save_client_identity(&self, pem: Option<&str>) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.client_identity_path();
        match pem {
            Some(pem) => write_atomic(&path, pem.as_bytes(), 0o600),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                _ => Ok(()),
            },
        }
    }

    /// The client certificate and key; `None` when there is none.
    pub fn client_identity(&self) -> Result<Option<ClientIdentity>, StateError> {
        let path = self.client_identity_path();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        if let Some(exposure) = check_private(&file).map_err(io_err(&path))? {
            return Err(StateError::Exposed {
                path,
                exposure,
                holds: "client certificate's private key",
            });
        }
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).map_err(io_err(&path))?;
        ClientIdentity::from_pem(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: format!("{e}; delete it and run `callhome-agent enroll` again"),
            })
    }

    /// The pins saved at enrollment; none when the file is absent.
    pub fn collector_pins(&self) -> Result<Vec<Pin>, StateError> {
        let path = self.collector_pins_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                Pin::parse(l).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    message: format!("{e}; run `callhome-agent enroll --pin ...` again"),
                })
            })
            .collect()
    }
}

/// Writes `data` to `path` so that a crash leaves either the old file or the new one: temporary file
/// in the same directory, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given to open() is reduced by the umask, and a leftover temporary file keeps its
        // old mode: set it explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(host_id: Uuid) -> Enrollment {
        Enrollment {
            credential: "chac_secret".into(),
            host_id,
            org: "ACME".into(),
            environment: "prod".into(),
            collector_url: "https://collector.example.com".into(),
            enrolled_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn host_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let first = state.host_id().unwrap();
        let second = StateDir::new(dir.path().join("state")).host_id().unwrap();
        assert_eq!(first, second);
        assert!(!first.is_nil());
    }

    #[test]
    fn unwritable_state_dir_gives_an_ephemeral_id() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the directory should be: creating it fails, even as root.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, "").unwrap();
        let state = StateDir::new(blocker.join("state"));
        assert!(state.host_id().is_err());
        let a = state.host_id_or_ephemeral();
        let b = state.host_id_or_ephemeral();
        assert_ne!(a, b);
    }

    #[test]
    fn enrollment_is_written_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let e = enrollment(state.host_id().unwrap());
        state.save_enrollment(&e).unwrap();
        let mode = fs::metadata(state.enrollment_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(state.load_enrollment().unwrap(), e);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// A certificate for a fresh key from a throwaway CA, as the identity file holds them.
    fn identity_pem() -> String {
        let pending = crate::client_cert::PendingKey::generate(Uuid::from_u128(3)).unwrap();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = rcgen::Issuer::new(rcgen::CertificateParams::default(), &ca_key);
        let csr = rcgen::CertificateSigningRequestParams::from_pem(pending.csr_pem()).unwrap();
        let cert = rcgen::CertificateParams::default()
            .signed_by(&csr.public_key, &issuer)
            .unwrap();
        pending.complete(&cert.pem()).unwrap().1
    }

    #[test]
    fn client_identity_is_kept_0600_refused_when_exposed_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(state.client_identity().unwrap().is_none());
        let pem = identity_pem();
        state.save_client_identity(Some(&pem)).unwrap();
        let path = state.client_identity_path();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let identity = state.client_identity().unwrap().unwrap();
        assert_eq!(identity.chain.len(), 1);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = state.client_identity().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("client certificate's private key") && msg.contains("chmod 600"),
            "{msg}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        fs::write(&path, "garbage").unwrap();
        let err = state.client_identity().unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");

        state.save_client_identity(None).unwrap();
        assert!(!path.exists());
        state.save_client_identity(None).unwrap();
    }

    #[test]
    fn readable_enrollment_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.save_enrollment(&enrollment(Uuid::new_v4())).unwrap();
        let path = state.enrollment_path();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = state.load_enrollment().unwrap_err();
        assert!(matches!(
            err,
            StateError::Exposed {
                exposure: Exposure::Mode { mode: 0o644 },
                ..
            }
        ));
        assert_eq!(err.exit_code(), crate::exit::CONFIG);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("mode 0644") && msg.contains("chmod 600"), "{msg}");
        // Group-readable only is refused too; 0600 and 0400 are fine.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(state.load_enrollment(), Err(StateError::Exposed { .. })));
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            state.load_enrollment().unwrap();
        }
    }

    #[test]
    fn secret_files_must_be_private_and_owned_by_the_agents_user() {
        assert_eq!(exposure(0o100600, 1000, 1000), None);
        assert_eq!(exposure(0o100400, 0, 1000), None, "root may own it");
        assert_eq!(
            exposure(0o100604, 1000, 1000),
            Some(Exposure::Mode { mode: 0o604 })
        );
        assert_eq!(
            exposure(0o100600, 1001, 1000),
            Some(Exposure::Owner {
                owner: 1001,
                user: 1000
            })
        );
        let fix = Exposure::Owner {
            owner: 1001,
            user: 1000,
        }
        .fix(Path::new("/var/lib/callhome/enrollment.json"));
        assert!(
            fix.contains("chown 1000 /var/lib/callhome/enrollment.json"),
            "{fix}"
        );
    }

    /// As root, a real file handed to another user is refused with the owner named.
    #[test]
    fn enrollment_owned_by_another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to give a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.save_enrollment(&enrollment(Uuid::new_v4())).unwrap();
        let path = state.enrollment_path();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = state.load_enrollment().unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Exposed {
                    exposure: Exposure::Owner { owner: 65534, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn missing_enrollment_says_to_enroll() {
        let dir = tempfile::tempdir().unwrap();
        let err = StateDir::new(dir.path()).load_enrollment().unwrap_err();
        assert!(matches!(err, StateError::NotEnrolled { .. }));
        assert!(err.to_string().contains("callhome-agent enroll"));
    }

    #[test]
    fn debug_leaves_the_credential_out() {
        let text = format!("{:?}", enrollment(Uuid::new_v4()));
        assert!(!text.contains("chac_secret"), "{text}");
    }

    #[test]
    fn collector_pins_are_saved_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(state.collector_pins().unwrap(), Vec::<Pin>::new());
        let pins = vec![Pin::of_spki(b"old key"), Pin::of_spki(b"new key")];
        state.save_collector_pins(&pins).unwrap();
        assert_eq!(state.collector_pins().unwrap(), pins);
        let text = fs::read_to_string(state.collector_pins_path()).unwrap();
        assert!(text.starts_with("sha256//"), "{text}");
        fs::write(state.collector_pins_path(), "sha256//nope\n").unwrap();
        let err = state.collector_pins().unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        state.save_collector_pins(&[]).unwrap();
        assert!(!state.collector_pins_path().exists());
    }

    #[test]
    fn collector_ca_copy_is_saved_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(state.collector_ca(), None);
        state.save_collector_ca(Some(b"pem")).unwrap();
        assert_eq!(state.collector_ca(), Some(state.collector_ca_path()));
        state.save_collector_ca(None).unwrap();
        assert_eq!(state.collector_ca(), None);
    }
}

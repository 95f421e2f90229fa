//! Opening the output file safely (DESIGN.md: the agent never follows a link,
//! never reads anything but a regular file, never blocks on a FIFO).
//!
//! The path is walked one component at a time with `openat`: every directory
//! is opened with `O_PATH | O_DIRECTORY | O_NOFOLLOW`, so a symbolic link
//! anywhere in the path is refused (a relative path starts at the working
//! directory). The file itself is first looked at with `fstatat(...,
//! AT_SYMLINK_NOFOLLOW)` (a link, FIFO, socket, device or directory is refused
//! without being opened), then opened with `O_RDONLY | O_NOFOLLOW | O_NONBLOCK
//! | O_CLOEXEC | O_NOCTTY` (a FIFO swapped in meanwhile cannot block the open)
//! and checked again with `fstat` (regular file only). At most
//! `OUTPUT_FILE_MAX_BYTES + 1` bytes are read, to tell a file that is too large.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use lifecycle_contract::names::OUTPUT_FILE_MAX_BYTES;

/// Why the output file was not read. Display: a one-line reason, never file content.
#[derive(Debug)]
pub enum Refused {
    /// A symbolic link (`path` is the component that is a link).
    Symlink { path: String },
    /// Not a regular file (`kind`: directory, FIFO, socket, ...).
    NotRegular { path: String, kind: &'static str },
    /// A path component is not a directory.
    NotADirectory { path: String },
    /// More than `OUTPUT_FILE_MAX_BYTES`.
    TooLarge { path: String, size: u64 },
    /// Not a path to a file (empty, or ends with `/`, `.` or `..`).
    BadPath { path: String },
    /// Could not be opened or read.
    Io { path: String, error: io::Error },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Symlink { path } => {
                write!(f, "{path} is a symbolic link: the agent never follows links")
            }
            Refused::NotRegular { path, kind } => {
                write!(f, "{path} is a {kind}, not a regular file")
            }
            Refused::NotADirectory { path } => write!(f, "{path} is not a directory"),
            Refused::TooLarge { path, size } => {
                write!(f, "{path} is {size} bytes, more than the {OUTPUT_FILE_MAX_BYTES} bytes (1 MiB) allowed")
            }
            Refused::BadPath { path } => write!(f, "{path:?} is not a path to a file"),
            Refused::Io { path, error } => write!(f, "cannot read {path}: {error}"),
        }
    }
}

impl std::error::Error for Refused {}

/// Reads the file at `path` safely. `Ok(None)`: no such file (or directory).
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, Refused> {
    let shown = path.display().to_string();
    let bad = || Refused::BadPath { path: shown.clone() };
    let mut comps: Vec<Component> = path.components().collect();
    let Some(Component::Normal(name)) = comps.pop() else {
        return Err(bad());
    };
    let mut dir =
        if path.is_absolute() { open_dir(libc::AT_FDCWD, OsStr::new("/")) } else { open_dir(libc::AT_FDCWD, OsStr::new(".")) }
            .map_err(|error| Refused::Io { path: shown.clone(), error })?;
    let mut walked = std::path::PathBuf::new();
    for c in comps {
        let part: &OsStr = match c {
            Component::RootDir => {
                walked.push("/");
                continue;
            }
            Component::CurDir => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
            Component::Prefix(_) => return Err(bad()),
        };
        walked.push(part);
        match open_dir(dir.as_raw_fd(), part) {
            Ok(fd) => dir = fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                let path = walked.display().to_string();
                return Err(match lstat_at(dir.as_raw_fd(), part) {
                    Ok(st) if is_type(&st, libc::S_IFLNK) => Refused::Symlink { path },
                    Ok(st) if !is_type(&st, libc::S_IFDIR) => Refused::NotADirectory { path },
                    _ => Refused::Io { path, error: e },
                });
            }
        }
    }
    // Look before opening: a device or FIFO is never opened.
    match lstat_at(dir.as_raw_fd(), name) {
        Ok(st) => check_type(&st, &shown)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Refused::Io { path: shown, error }),
    }
    let fd = match open_at(
        dir.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Refused::Symlink { path: shown });
        }
        Err(error) => return Err(Refused::Io { path: shown, error }),
    };
    let st = fstat(fd.as_raw_fd()).map_err(|error| Refused::Io { path: shown.clone(), error })?;
    check_type(&st, &shown)?;
    if st.st_size as u64 > OUTPUT_FILE_MAX_BYTES as u64 {
        return Err(Refused::TooLarge { path: shown, size: st.st_size as u64 });
    }
    let mut buf = Vec::with_capacity(st.st_size.max(0) as usize + 1);
    File::from(fd)
        .take(OUTPUT_FILE_MAX_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|error| Refused::Io { path: shown.clone(), error })?;
    if buf.len() > OUTPUT_FILE_MAX_BYTES {
        // It grew after fstat.
        return Err(Refused::TooLarge { path: shown, size: buf.len() as u64 });
    }
    Ok(Some(buf))
}

/// What `path` is, without following a link: for reacting to its creation.
pub fn is_regular_nonempty_or_special(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) => !m.file_type().is_file() || m.len() > 0,
        Err(_) => false,
    }
}

fn check_type(st: &libc::stat, path: &str) -> Result<(), Refused> {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFLNK => {
            return Err(Refused::Symlink { path: path.to_string() });
        }
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "FIFO (named pipe)",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "special file",
    };
    Err(Refused::NotRegular { path: path.to_string(), kind })
}

fn is_type(st: &libc::stat, t: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == t
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_at(dir: RawFd, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned by us.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir(dir: RawFd, name: &OsStr) -> io::Result<OwnedFd> {
    open_at(dir, name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: zeroed stat is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(st) }
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter for fstat on a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstat(fd, &mut st) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(st) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifecycle-agent-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn regular_file_is_read() {
        let d = tempdir("regular");
        let f = d.join("out.json");
        std::fs::write(&f, b"{}").unwrap();
        assert_eq!(read(&f).unwrap().unwrap(), b"{}");
        // `..` works too.
        let dotdot = d.join("sub");
        std::fs::create_dir(&dotdot).unwrap();
        assert_eq!(read(&dotdot.join("../out.json")).unwrap().unwrap(), b"{}");
    }

    #[test]
    fn missing_file_or_directory_is_none() {
        let d = tempdir("missing");
        assert!(read(&d.join("nope.json")).unwrap().is_none());
        assert!(read(&d.join("nodir/nope.json")).unwrap().is_none());
    }

    #[test]
    fn symlink_is_refused() {
        let d = tempdir("symlink");
        std::fs::write(d.join("target"), b"{}").unwrap();
        symlink(d.join("target"), d.join("out.json")).unwrap();
        let e = read(&d.join("out.json")).unwrap_err();
        assert!(matches!(e, Refused::Symlink { .. }), "{e:?}");
        assert!(e.to_string().contains("symbolic link"));
        // A dangling link too.
        symlink(d.join("none"), d.join("dangling.json")).unwrap();
        assert!(matches!(read(&d.join("dangling.json")).unwrap_err(), Refused::Symlink { .. }));
    }

    #[test]
    fn symlinked_directory_is_refused() {
        let d = tempdir("symlinkdir");
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/out.json"), b"{}").unwrap();
        symlink(d.join("real"), d.join("link")).unwrap();
        let e = read(&d.join("link/out.json")).unwrap_err();
        match e {
            Refused::Symlink { path } => assert!(path.ends_with("/link"), "{path}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let d = tempdir("fifo");
        let f = d.join("out.json");
        let c = CString::new(f.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = Instant::now();
        let e = read(&f).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(matches!(e, Refused::NotRegular { kind: "FIFO (named pipe)", .. }), "{e:?}");
    }

    #[test]
    fn directory_is_refused() {
        let d = tempdir("dir");
        std::fs::create_dir(d.join("out.json")).unwrap();
        let e = read(&d.join("out.json")).unwrap_err();
        assert!(matches!(e, Refused::NotRegular { kind: "directory", .. }), "{e:?}");
    }

    #[test]
    fn file_as_directory_component() {
        let d = tempdir("notdir");
        std::fs::write(d.join("file"), b"x").unwrap();
        let e = read(&d.join("file/out.json")).unwrap_err();
        assert!(matches!(e, Refused::NotADirectory { .. }), "{e:?}");
    }

    #[test]
    fn device_is_refused() {
        let e = read(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(e, Refused::NotRegular { kind: "character device", .. }), "{e:?}");
    }

    #[test]
    fn size_limit() {
        let d = tempdir("large");
        let f = d.join("out.json");
        std::fs::write(&f, vec![b' '; OUTPUT_FILE_MAX_BYTES]).unwrap();
        assert_eq!(read(&f).unwrap().unwrap().len(), OUTPUT_FILE_MAX_BYTES);
        std::fs::write(&f, vec![b' '; OUTPUT_FILE_MAX_BYTES + 1]).unwrap();
        let e = read(&f).unwrap_err();
        assert!(matches!(e, Refused::TooLarge { size, .. } if size == OUTPUT_FILE_MAX_BYTES as u64 + 1), "{e:?}");
        assert!(e.to_string().contains("1048577 bytes"));
    }

    #[test]
    fn unreadable_is_io() {
        // Root ignores file modes; check only when not root.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        let d = tempdir("unreadable");
        let f = d.join("out.json");
        std::fs::write(&f, b"{}").unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        assert!(matches!(read(&f).unwrap_err(), Refused::Io { .. }));
    }

    #[test]
    fn bad_paths() {
        for p in ["", "/", "/tmp/.."] {
            let r = read(Path::new(p));
            assert!(matches!(r, Err(Refused::BadPath { .. })), "{p}: {r:?}");
        }
    }
}

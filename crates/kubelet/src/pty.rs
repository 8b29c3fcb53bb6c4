//! Pseudo-terminals for `exec -t`: the master end split into a
//! non-blocking tokio reader (the terminal's output) and writer (its
//! input) plus a handle for window size changes, and the slave end for
//! the command's stdio. The command makes the slave its controlling
//! terminal itself (the sandbox helper's `--tty`).

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::net::unix::pipe;

/// The master end of a new pty.
pub(crate) struct Master {
    /// What the command writes to the terminal. Reading it fails (EIO)
    /// once every slave descriptor is closed: the end of the output.
    pub output: pipe::Receiver,
    /// What the command reads from the terminal.
    pub input: pipe::Sender,
    /// Size changes.
    pub size: Resizer,
}

/// Sets a pty's window size.
pub(crate) struct Resizer(OwnedFd);

impl Resizer {
    /// Set the terminal's size (the command gets SIGWINCH).
    pub(crate) fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        Ok(rustix::termios::tcsetwinsize(&self.0, size)?)
    }
}

/// A new pty: its master, and its slave for the command's stdio. Every
/// descriptor is close-on-exec (the command gets the slave as its stdio
/// only). Must be called inside the runtime.
pub(crate) fn open() -> io::Result<(Master, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // One open file: non-blocking for every duplicate.
    rustix::io::ioctl_fionbio(&master, true)?;
    let master = Master {
        output: pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?,
        input: pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?,
        size: Resizer(master),
    };
    Ok((master, slave))
}

//! Hands back the executable's startup-only code pages once the server is listening.
//!
//! The kernel maps file-backed code 64 KiB around every page the process touches, so parsing
//! flags, loading the workflow catalog and opening the store leave several MiB of code mapped
//! that a serving process never runs again. Those pages are clean copies of the binary:
//! unmapping them (`MADV_DONTNEED`) costs nothing but a minor fault if one is needed again,
//! lets the kernel reclaim them first under pressure, and keeps them out of the pod's working
//! set. Only read-only private mappings of the executable that hold no private (written)
//! page are touched: relocated data such as `.data.rel.ro` is never given back.

use std::ffi::c_void;
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

use nix::sys::mman::{MmapAdvise, madvise};

/// One mapping of `/proc/self/smaps` that may be given back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Releasable {
    start: usize,
    end: usize,
    resident_kib: u64,
}

/// The read-only, never-written mappings of `exe` in an smaps listing.
fn releasable_mappings(smaps: &str, exe: &Path) -> Vec<Releasable> {
    let exe = exe.to_string_lossy();
    let mut out = Vec::new();
    // The mapping being read, if it is a candidate, and the private KiB seen in it so far.
    let mut current: Option<(Releasable, u64)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            out.extend(
                current
                    .take()
                    .and_then(|(m, private)| (private == 0).then_some(m)),
            );
            let perms = fields.next().unwrap_or_default().as_bytes();
            let path = fields.nth(3).unwrap_or_default();
            let read_only_private =
                perms.len() == 4 && perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p';
            if read_only_private && path == exe {
                let m = Releasable {
                    start: lo,
                    end: hi,
                    resident_kib: 0,
                };
                current = Some((m, 0));
            }
            continue;
        }
        let Some((m, private)) = current.as_mut() else {
            continue;
        };
        let kib = fields
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" => m.resident_kib = kib,
            // A copy-on-write (anonymous) page means the mapping was written: keep it.
            // (Private_Dirty is no guide: it also counts a freshly written binary's pages.)
            "Anonymous:" => *private += kib,
            _ => {}
        }
    }
    out.extend(current.and_then(|(m, private)| (private == 0).then_some(m)));
    out
}

/// How long after the listener opens startup is taken to be over: the first expiry sweep
/// and the accept loop have run by then.
const STARTUP_SETTLES_IN: Duration = Duration::from_secs(2);

/// Waits for startup to settle, then gives back the code pages only startup used.
pub async fn release_after_startup() {
    tokio::time::sleep(STARTUP_SETTLES_IN).await;
    match release_startup_pages() {
        Ok(kib) => tracing::debug!(kib, "gave back the startup-only code pages"),
        Err(e) => tracing::debug!(error = %e, "startup code pages kept"),
    }
}

/// Unmaps the executable's clean code and read-only data pages; they fault back in from the
/// page cache when next used. Returns the KiB that were resident, or why nothing was done.
pub fn release_startup_pages() -> Result<u64, String> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")
        .map_err(|e| format!("/proc/self/smaps: {e}"))?;
    let mut released = 0;
    for m in releasable_mappings(&smaps, &exe) {
        let Some(addr) = NonNull::new(m.start as *mut c_void) else {
            continue;
        };
        // SAFETY: the range is a whole private, read-only mapping of the executable with no
        // private pages, so its contents equal the file; MADV_DONTNEED drops the page-table
        // entries and the next access maps the same bytes again from the page cache. Only a
        // debugger's breakpoint written between the smaps read and this call would be lost.
        unsafe { madvise(addr, m.end - m.start, MmapAdvise::MADV_DONTNEED) }
            .map_err(|e| format!("madvise {:#x}-{:#x}: {e}", m.start, m.end))?;
        released += m.resident_kib;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 fe:00 42 /usr/bin/js-mcp
Rss:                 900 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 fe:00 42 /usr/bin/js-mcp
Rss:                5000 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0900000-55d0a0980000 r--p 00900000 fe:00 42 /usr/bin/js-mcp
Rss:                 400 kB
Private_Dirty:       400 kB
Anonymous:           400 kB
55d0a0980000-55d0a0990000 rw-p 00980000 fe:00 42 /usr/bin/js-mcp
Rss:                  16 kB
Anonymous:            16 kB
55d0a0990000-55d0a0a00000 r--p 00990000 fe:00 42 /usr/bin/js-mcp
Rss:                  64 kB
Private_Dirty:        64 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1000 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_released() {
        let found = releasable_mappings(SMAPS, Path::new("/usr/bin/js-mcp"));
        assert_eq!(
            found,
            vec![
                Releasable {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0100000,
                    resident_kib: 900
                },
                Releasable {
                    start: 0x55d0a0100000,
                    end: 0x55d0a0900000,
                    resident_kib: 5000
                },
                Releasable {
                    start: 0x55d0a0990000,
                    end: 0x55d0a0a00000,
                    resident_kib: 64
                },
            ],
            "relocated (written) data, writable data and other files stay mapped; page-cache dirt is no write"
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        let released = release_startup_pages().expect("release");
        assert!(released > 0, "a test binary has resident code");
        // Code and read-only data fault back in: formatting and collections still work.
        let v: Vec<String> = (0..1000).map(|i| format!("{i:04}")).collect();
        assert_eq!(v[999], "0999");
    }
}

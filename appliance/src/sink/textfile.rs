//! A line-oriented records or alerts file (CSV, JSON Lines) that a long run can keep writing:
//!
//! - **Never truncated at start** (in [`Start::Append`] mode, what `weir run` uses): an existing
//!   file is appended to. A CSV file whose header is not this run's header (other columns) is
//!   moved aside first, under a time-stamped name, and a new file is started.
//! - **Flushed** at least every `flush` interval (on [`TextFile::tick`]), so a crash loses at
//!   most that much; and before rotating, reopening and finishing.
//! - **Rotated** by size and age: the full file is renamed to a time-stamped name beside it
//!   (`flows-20261203T060102Z.csv`) and a new one, with its header, is started at the path.
//! - **Reopened** on request (SIGUSR1 in `weir run`): after logrotate renames the file, the next
//!   line goes to a new file at the configured path (no `copytruncate` needed).
//!
//! Lines are formatted straight into the file's own buffer ([`TextFile::line`]), which is
//! written out when it holds [`BUF_BYTES`]; no copy or allocation per line.

use chrono::{DateTime, Datelike, Timelike};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The buffer is written to the file once it holds this much.
pub const BUF_BYTES: usize = 1 << 20;

/// What to do with a file that already exists when the sink starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Replace it (`weir extract --out`: one complete file, described by its manifest).
    Truncate,
    /// Keep it and append (a CSV file with another header is moved aside first).
    Append,
}

/// How a text file is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextOptions {
    pub start: Start,
    /// Write buffered lines out at least this often (`[sinks] flush_s`).
    pub flush: Duration,
    /// Rotate once the file holds this many bytes (`None`: never).
    pub max_bytes: Option<u64>,
    /// Rotate once the file has been open this long (`None`: never).
    pub max_age: Option<Duration>,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            start: Start::Truncate,
            flush: Duration::from_secs(1),
            max_bytes: None,
            max_age: None,
        }
    }
}

impl TextOptions {
    /// Size and age limits from the config's megabytes and seconds; 0 turns a limit off.
    pub fn with_rotation(mut self, mb: f64, secs: f64) -> TextOptions {
        self.max_bytes = (mb > 0.0).then(|| (mb * 1024.0 * 1024.0).round().max(1.0) as u64);
        self.max_age = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
        self
    }
}

pub struct TextFile {
    path: PathBuf,
    /// Written first in every new file (the CSV header line; empty for JSON Lines).
    header: Vec<u8>,
    opts: TextOptions,
    file: Option<File>,
    buf: Vec<u8>,
    /// Bytes in the file (written), not counting `buf`.
    written: u64,
    opened: Instant,
    last_flush: Instant,
    /// Files rotated away so far.
    pub rotations: u64,
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl TextFile {
    /// Open `path` as `opts.start` says; a new (or emptied) file gets `header` first.
    pub fn open(path: &Path, header: Vec<u8>, opts: TextOptions) -> io::Result<TextFile> {
        let mut t = TextFile {
            path: path.to_path_buf(),
            header,
            opts,
            file: None,
            buf: Vec::with_capacity(BUF_BYTES + 64 * 1024),
            written: 0,
            opened: Instant::now(),
            last_flush: Instant::now(),
            rotations: 0,
        };
        t.start(opts.start)?;
        Ok(t)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the file at `path` (the previous one, if any, must be flushed and closed).
    fn start(&mut self, start: Start) -> io::Result<()> {
        let path = self.path.clone();
        let existing = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() > 0 && start == Start::Append => Some(m.len()),
            _ => None,
        };
        let mut keep = existing.is_some();
        if keep && !self.header.is_empty() {
            // Appending under another header would mix columns: move that file aside.
            let mut head = vec![0u8; self.header.len()];
            let mut f = File::open(&path).map_err(|e| named(&path, e))?;
            let same = f.read_exact(&mut head).is_ok() && head == self.header;
            if !same {
                let aside = aside_name(&path, SystemTime::now());
                std::fs::rename(&path, &aside).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "cannot move {} (another header) aside to {}: {e}",
                            path.display(),
                            aside.display()
                        ),
                    )
                })?;
                tracing::warn!(
                    file = %path.display(),
                    moved_to = %aside.display(),
                    "the existing records file has other columns: moved aside, a new file is started"
                );
                keep = false;
            }
        }
        let mut file = if keep {
            OpenOptions::new().append(true).read(true).open(&path)
        } else if start == Start::Append {
            // Created if missing; if another process made it meanwhile, still never truncated.
            OpenOptions::new()
                .append(true)
                .read(true)
                .create(true)
                .open(&path)
        } else {
            super::replace::create_replacing(&path)
        }
        .map_err(|e| named(&path, e))?;
        self.written = file.seek(SeekFrom::End(0)).map_err(|e| named(&path, e))?;
        self.buf.clear();
        if self.written > 0 {
            // A line cut short by a crash must not run into the first new line.
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1)).map_err(|e| named(&path, e))?;
            if file.read_exact(&mut last).is_ok() && last[0] != b'\n' {
                self.buf.push(b'\n');
            }
        } else {
            self.buf.extend_from_slice(&self.header);
        }
        self.file = Some(file);
        self.opened = Instant::now();
        self.last_flush = Instant::now();
        Ok(())
    }

    /// The buffer to append one whole line to (with its newline); call
    /// [`TextFile::end_line`] after.
    #[inline]
    pub fn line(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// A line was appended: write the buffer out when it is full, rotate when the file is
    /// at its size limit.
    #[inline]
    pub fn end_line(&mut self) -> io::Result<()> {
        if self.buf.len() >= BUF_BYTES {
            self.write_out()?;
        }
        if let Some(max) = self.opts.max_bytes {
            if self.written + self.buf.len() as u64 >= max {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other(format!("{}: not open", self.path.display())))?;
        let r = file.write_all(&self.buf);
        // What could not be written is dropped rather than retried forever (the caller
        // counts the error); the next lines start a fresh buffer.
        self.written += self.buf.len() as u64;
        self.buf.clear();
        r.map_err(|e| named(&self.path, e))
    }

    /// Write out what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.write_out()
    }

    /// Periodic work: flush when `flush` has passed, rotate when the file is too old.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.last_flush.elapsed() >= self.opts.flush {
            self.flush()?;
        }
        if let Some(age) = self.opts.max_age {
            if self.opened.elapsed() >= age
                && self.written + self.buf.len() as u64 > self.header.len() as u64
            {
                self.rotate()?;
            }
        }
        Ok(())
    }

    /// Close the file, move it aside under a time-stamped name and start a new one.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(|e| named(&self.path, e))?;
        }
        let aside = aside_name(&self.path, SystemTime::now());
        std::fs::rename(&self.path, &aside).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot rotate {} to {}: {e}",
                    self.path.display(),
                    aside.display()
                ),
            )
        })?;
        self.rotations += 1;
        tracing::info!(file = %self.path.display(), rotated_to = %aside.display(), "rotated");
        self.start(Start::Append)
    }

    /// Flush and open the path again (after logrotate has renamed the file).
    pub fn reopen(&mut self) -> io::Result<()> {
        let r = self.flush();
        self.file = None;
        self.start(Start::Append)?;
        r
    }

    /// Write out everything (end of the run).
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

impl Drop for TextFile {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

/// `DIR/STEM-YYYYmmddTHHMMSSZ.EXT` for `DIR/STEM.EXT` (with `-N` added if that is taken).
pub fn aside_name(path: &Path, now: SystemTime) -> PathBuf {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0).unwrap_or_default();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut n = 0u32;
    loop {
        let name = match n {
            0 => format!("{stem}-{stamp}{ext}"),
            _ => format!("{stem}-{stamp}-{n}{ext}"),
        };
        let p = path.with_file_name(name);
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append() -> TextOptions {
        TextOptions {
            start: Start::Append,
            ..Default::default()
        }
    }

    fn write(t: &mut TextFile, s: &str) {
        t.line().extend_from_slice(s.as_bytes());
        t.end_line().unwrap();
    }

    #[test]
    fn a_second_run_appends_without_a_second_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flows.csv");
        for run in ["1", "2"] {
            let mut t = TextFile::open(&p, b"a,b\n".to_vec(), append()).unwrap();
            write(&mut t, &format!("{run},x\n"));
            t.finish().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,x\n2,x\n");
    }

    #[test]
    fn another_header_moves_the_old_file_aside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flows.csv");
        std::fs::write(&p, "a,b\n1,x\n").unwrap();
        let mut t = TextFile::open(&p, b"a,b,c\n".to_vec(), append()).unwrap();
        write(&mut t, "2,y,z\n");
        t.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b,c\n2,y,z\n");
        let old: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|x| x != &p)
            .collect();
        assert_eq!(old.len(), 1, "{old:?}");
        let name = old[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("flows-") && name.ends_with("Z.csv"),
            "{name}"
        );
        assert_eq!(std::fs::read_to_string(&old[0]).unwrap(), "a,b\n1,x\n");
    }

    #[test]
    fn a_line_cut_short_does_not_swallow_the_next() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("alerts.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":").unwrap();
        let mut t = TextFile::open(&p, Vec::new(), append()).unwrap();
        write(&mut t, "{\"a\":3}\n");
        drop(t);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().last(), Some("{\"a\":3}"));
    }

    #[test]
    fn flushes_on_tick_after_the_interval() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        let opts = TextOptions {
            flush: Duration::from_millis(50),
            ..append()
        };
        let mut t = TextFile::open(&p, Vec::new(), opts).unwrap();
        write(&mut t, "1\n");
        t.tick().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "", "not yet due");
        std::thread::sleep(Duration::from_millis(60));
        t.tick().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n");
        std::mem::forget(t);
    }

    #[test]
    fn rotates_by_size_with_a_header_in_every_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flows.csv");
        let opts = TextOptions {
            max_bytes: Some(20),
            ..append()
        };
        let mut t = TextFile::open(&p, b"h\n".to_vec(), opts).unwrap();
        for i in 0..10 {
            write(&mut t, &format!("line{i}\n"));
        }
        t.finish().unwrap();
        let mut all = Vec::new();
        for e in std::fs::read_dir(d.path()).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(text.starts_with("h\n"), "{text:?}");
            assert!(text.len() <= 20 + 6, "{text:?}");
            all.extend(text.lines().skip(1).map(String::from));
        }
        all.sort();
        let want: Vec<String> = (0..10).map(|i| format!("line{i}")).collect();
        assert_eq!(all, want);
        assert!(t.rotations >= 3);
    }

    #[test]
    fn reopen_after_a_rename_writes_a_new_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flows.csv");
        let mut t = TextFile::open(&p, b"h\n".to_vec(), append()).unwrap();
        write(&mut t, "1\n");
        t.flush().unwrap();
        let moved = d.path().join("flows.csv.1");
        std::fs::rename(&p, &moved).unwrap();
        t.reopen().unwrap();
        write(&mut t, "2\n");
        t.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "h\n1\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "h\n2\n");
    }
}

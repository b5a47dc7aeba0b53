//! The files of a bundle while it is built, and the archive they go into. Small files stay in
//! memory; the two large ones (`chain.jsonl`, one line per event of the segment, and
//! `events.jsonl`) are spooled to a scratch folder beside the archive as they are written.
//! Every file is hashed once, as it is made, and the manifest and `SHA256SUMS` use that hash.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A folder beside the archive for the spooled files and the archive being written; removed
/// with everything in it when dropped, whether the build succeeded or not.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// `.NAME.partialPID/` in the folder of `out`.
    pub fn beside(out: &Path) -> io::Result<Scratch> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into());
        let dir = parent.join(format!(".{name}.partial{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new spooled file named `name` in the scratch folder.
    pub fn spool(&self, name: &str) -> io::Result<Spool> {
        let path = self.path(name);
        let file = File::create(&path)?;
        Ok(Spool {
            path,
            out: BufWriter::with_capacity(1 << 18, file),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A file written to disk as it is made, hashed on the way.
pub struct Spool {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Spool {
    /// Empties the file, to write it again from its first byte.
    pub fn restart(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.bytes = 0;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<Entry> {
        self.out.flush()?;
        Ok(Entry {
            body: Body::Spooled(self.path),
            sha256: self.hasher.finalize().into(),
            bytes: self.bytes,
        })
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub enum Body {
    Memory(Vec<u8>),
    Spooled(PathBuf),
}

/// One file of the bundle, with its SHA-256 and size.
pub struct Entry {
    pub body: Body,
    pub sha256: [u8; 32],
    pub bytes: u64,
}

impl Entry {
    pub fn memory(bytes: Vec<u8>) -> Entry {
        Entry {
            sha256: Sha256::digest(&bytes).into(),
            bytes: bytes.len() as u64,
            body: Body::Memory(bytes),
        }
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// The bundle's files by path inside its folder.
#[derive(Default)]
pub struct Files(BTreeMap<String, Entry>);

impl Files {
    pub fn insert(&mut self, path: impl Into<String>, bytes: Vec<u8>) {
        self.0.insert(path.into(), Entry::memory(bytes));
    }

    pub fn insert_entry(&mut self, path: impl Into<String>, entry: Entry) {
        self.0.insert(path.into(), entry);
    }

    /// Adds a file made after the others went into `archive`: written there now, listed here.
    pub fn insert_into(
        &mut self,
        archive: &mut Archive,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), super::EvidenceError> {
        let entry = Entry::memory(bytes);
        archive.add(path, &entry)?;
        self.insert_entry(path, entry);
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.0.iter()
    }

    /// The bytes of a file kept in memory.
    pub fn bytes(&self, path: &str) -> Option<&[u8]> {
        match &self.0.get(path)?.body {
            Body::Memory(b) => Some(b),
            Body::Spooled(_) => None,
        }
    }
}

/// The zip being written, entries in the order they are added, under one folder.
pub struct Archive {
    zip: zip::ZipWriter<BufWriter<File>>,
    folder: String,
    when: zip::DateTime,
}

impl Archive {
    pub fn create(path: &Path, folder: &str, when: zip::DateTime) -> io::Result<Archive> {
        let file = File::create(path)?;
        Ok(Archive {
            zip: zip::ZipWriter::new(BufWriter::with_capacity(1 << 18, file)),
            folder: folder.to_string(),
            when,
        })
    }

    pub fn add(&mut self, path: &str, entry: &Entry) -> Result<(), super::EvidenceError> {
        use zip::write::SimpleFileOptions;
        use zip::CompressionMethod;
        // PDFs and JPEGs are compressed already.
        let packed = path.ends_with(".pdf") || path.ends_with(".jpg");
        let options = SimpleFileOptions::default()
            .compression_method(if packed {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            })
            .compression_level(if packed { None } else { Some(3) })
            .last_modified_time(self.when)
            .unix_permissions(0o644)
            .large_file(entry.bytes > u64::from(u32::MAX) / 2);
        self.zip
            .start_file(format!("{}/{path}", self.folder), options)?;
        match &entry.body {
            Body::Memory(b) => self.zip.write_all(b)?,
            Body::Spooled(p) => {
                io::copy(&mut File::open(p)?, &mut self.zip)?;
            }
        }
        Ok(())
    }

    /// Writes the central directory and syncs the file to disk.
    pub fn finish(self) -> Result<(), super::EvidenceError> {
        let mut w = self.zip.finish()?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_hashes_what_it_kept_after_a_restart_and_the_scratch_folder_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("case.zip");
        let scratch = Scratch::beside(&out).unwrap();
        let mut s = scratch.spool("chain.jsonl").unwrap();
        s.write_all(b"thrown away\n").unwrap();
        s.restart().unwrap();
        s.write_all(b"kept\n").unwrap();
        let entry = s.finish().unwrap();
        let Body::Spooled(path) = &entry.body else {
            panic!("not spooled")
        };
        assert_eq!(std::fs::read(path).unwrap(), b"kept\n");
        assert_eq!(entry.bytes, 5);
        assert_eq!(entry.sha256, <[u8; 32]>::from(Sha256::digest(b"kept\n")));
        let folder = path.parent().unwrap().to_path_buf();
        drop(scratch);
        assert!(!folder.exists());
    }
}

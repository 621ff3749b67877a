//! Reading a block of the `fs` backend for a large sequential read (a download) without
//! copying it through the page cache.
//!
//! What the page cache already holds is taken from it (`preadv2` with `RWF_NOWAIT`, which
//! never waits for the disk); the rest is read with `O_DIRECT`, the disk writing straight
//! into an aligned buffer of ours: one copy less than a buffered read, no page-cache pages to
//! allocate and reclaim, and no other data evicted by a big download. Where the filesystem
//! refuses `O_DIRECT`, the read falls back to a buffered one.
//!
//! Buffers are anonymous memory maps of a block's size (page-aligned, and backed by huge
//! pages where the kernel has them, which makes pinning them for the disk cheap), kept in
//! a small pool and handed out as [`Bytes`] that return them to it when the last reference
//! goes.

use std::fs::File;
use std::io::ErrorKind;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{Advice, MmapMut};
use rustix::fs::OFlags;
use rustix::io::{Errno, IoSliceMut, ReadWriteFlags};

use crate::error::{BlockError, Result};
use crate::hash::BLOCK_SIZE;

/// Alignment of `O_DIRECT` offsets, lengths and buffer addresses: the page size, a multiple
/// of any disk's logical block size.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// Buffers the pool keeps for reuse; more are unmapped.
const IDLE_BUFFERS: usize = 4;

/// Block-sized buffers for direct reads.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<MmapMut>>,
}

impl BufferPool {
    /// A buffer from the pool, or a new one; `None` if no memory can be mapped.
    fn take(&self) -> Option<MmapMut> {
        if let Some(buffer) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Some(buffer);
        }
        let buffer = MmapMut::map_anon(BLOCK_SIZE)
            .inspect_err(|error| tracing::warn!(%error, "cannot map a read buffer"))
            .ok()?;
        // Best effort: without huge pages it is only slower.
        let _ = buffer.advise(Advice::HugePage);
        Some(buffer)
    }

    fn give_back(&self, buffer: MmapMut) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_BUFFERS
        {
            idle.push(buffer);
        }
    }
}

/// The bytes of a block in a pooled buffer, owned by the [`Bytes`] made of them.
struct PooledBlock {
    /// Always `Some` until dropped.
    buffer: Option<MmapMut>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledBlock {
    fn as_ref(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .and_then(|b| b.get(..self.len))
            .unwrap_or_default()
    }
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.pool.give_back(buffer);
        }
    }
}

/// The bytes of the block file at `path`, `None` if there is none. See the module.
pub(crate) fn read_block_direct(path: &Path, pool: &Arc<BufferPool>) -> Result<Option<Bytes>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BlockError::io("open block", path)(e)),
    };
    let len = file
        .metadata()
        .map_err(BlockError::io("stat block", path))?
        .len();
    let len = match usize::try_from(len) {
        Ok(0) => return Ok(Some(Bytes::new())),
        Ok(len) if len <= BLOCK_SIZE => len,
        // A damaged file longer than a block: read it all, as a buffered read does.
        _ => return crate::fs::read_open_block(file, path).map(Some),
    };
    let Some(mut buffer) = pool.take() else {
        return crate::fs::read_open_block(file, path).map(Some);
    };
    let end = len.next_multiple_of(DIRECT_ALIGN);
    let aligned = buffer.as_ptr().align_offset(DIRECT_ALIGN) == 0;
    let Some(area) = buffer.get_mut(..end).filter(|_| aligned) else {
        return crate::fs::read_open_block(file, path).map(Some);
    };
    let read = fill(&file, path, area, len)?;
    Ok(Some(Bytes::from_owner(PooledBlock {
        buffer: Some(buffer),
        len: read,
        pool: Arc::clone(pool),
    })))
}

/// Reads the first `len` bytes of `file` into `area` (aligned, its length a multiple of
/// `DIRECT_ALIGN`); returns how many there were (fewer only at an early end of file).
///
/// Whether the block is in the page cache is told by its last page: a read with
/// `RWF_NOWAIT` takes it if it is there, and otherwise starts reading that one page (a
/// missing page makes even such a read start the kernel's read-ahead, which for a lone page
/// is that page), which is dropped again after the block is read directly, so that the
/// next reader does not take a block that is not cached for one that is.
fn fill(file: &File, path: &Path, area: &mut [u8], len: usize) -> Result<usize> {
    let error = |e: Errno| BlockError::io("read block", path)(e.into());
    let probe = (len - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
    let cached = matches!(
        read_cached(file, &mut area[probe..len], probe),
        Ok(n) if n == len - probe
    );
    let mut done = 0;
    if cached {
        while done < probe {
            match read_cached(file, &mut area[done..probe], done) {
                Ok(0) => return Ok(done),
                Ok(n) => done += n,
                // Evicted in part since: the rest from the disk.
                Err(_) => break,
            }
        }
        if done == probe {
            return Ok(len);
        }
    }
    // From the disk, from the aligned offset at or before `done`.
    if set_direct(file, true).is_ok() {
        let mut at = done / DIRECT_ALIGN * DIRECT_ALIGN;
        while at < len && at.is_multiple_of(DIRECT_ALIGN) {
            match rustix::io::pread(file, &mut area[at..], at as u64) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(Errno::INTR) => {}
                // The filesystem wants another alignment: read the rest buffered.
                Err(Errno::INVAL) => break,
                Err(e) => return Err(error(e)),
            }
        }
        if !cached {
            forget(file, probe);
        }
        if at >= len {
            return Ok(len);
        }
        set_direct(file, false).map_err(error)?;
        done = at;
    }
    while done < len {
        match rustix::io::pread(file, &mut area[done..len], done as u64) {
            Ok(0) => return Ok(done),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(error(e)),
        }
    }
    Ok(len)
}

/// Reads into `buffer` from `offset` what the page cache holds there, without waiting for
/// the disk: `EAGAIN` when the first page is not cached.
fn read_cached(file: &File, buffer: &mut [u8], offset: usize) -> rustix::io::Result<usize> {
    loop {
        let mut slices = [IoSliceMut::new(&mut *buffer)];
        match rustix::io::preadv2(file, &mut slices, offset as u64, ReadWriteFlags::NOWAIT) {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Drops the page at `offset` from the page cache (best effort).
fn forget(file: &File, offset: usize) {
    let _ = rustix::fs::fadvise(
        file,
        offset as u64,
        NonZeroU64::new(DIRECT_ALIGN as u64),
        rustix::fs::Advice::DontNeed,
    );
}

fn set_direct(file: &File, on: bool) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags)
}

//! Compression encoders for packed ACIs (aci-format §2): xz (liblzma's
//! multithreaded encoder), gzip, bzip2 or none.
//!
//! Every encoder is deterministic: equal input gives equal output.
//! * xz always goes through liblzma's multithreaded encoder, even with one
//!   thread, with a fixed block size (3 × the preset's dictionary, liblzma's
//!   own default, never derived from the thread count) and a CRC64 check as
//!   `xz` writes. The output is then the same whatever the thread count;
//!   a test checks it. (The single-threaded encoder would write one block
//!   without sizes, different bytes.) With these settings the output is
//!   byte-identical to `xz -T2 -6` on the same tar (checked by
//!   `bench/pack.sh` with liblzma 5.4.1). Compressed bytes can differ
//!   between liblzma versions; the image id never does.
//! * gzip has header mtime 0, no file name and OS byte 255 ("unknown"),
//!   as Go's writer (and so `actool build`) leaves them.

use std::io::{self, Write};

use xz2::stream::{Check, MtStreamBuilder};

use super::Compression;

/// Default xz preset, as `xz` uses.
pub const DEFAULT_XZ_PRESET: u32 = 6;
/// Default gzip level, as `gzip` uses.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default bzip2 block size (level), as `bzip2` uses.
pub const DEFAULT_BZIP2_LEVEL: u32 = 9;

/// Why an encoder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The level is outside what the compression accepts.
    #[error(
        "compression level {level} is out of range for {compression} (accepted: {min}..={max})"
    )]
    BadLevel {
        /// The compression asked for.
        compression: Compression,
        /// The rejected level.
        level: u32,
        /// Lowest accepted level.
        min: u32,
        /// Highest accepted level.
        max: u32,
    },
    /// liblzma refused to set up the encoder (e.g. out of memory).
    #[error("cannot start the xz encoder with {threads} threads: {source}")]
    Xz {
        /// The thread count asked for.
        threads: u32,
        /// liblzma's error.
        source: xz2::stream::Error,
    },
}

/// An encoder writing compressed bytes into `W`.
pub(crate) enum Encoder<W: Write> {
    /// Plain tar.
    None(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// bzip2.
    Bzip2(bzip2::write::BzEncoder<W>),
    /// xz.
    Xz(xz2::write::XzEncoder<W>),
}

/// The range of levels a compression accepts, and its default.
fn levels(compression: Compression) -> (u32, u32, u32) {
    match compression {
        Compression::None => (0, 0, 0),
        Compression::Gzip => (0, 9, DEFAULT_GZIP_LEVEL),
        Compression::Bzip2 => (1, 9, DEFAULT_BZIP2_LEVEL),
        Compression::Xz => (0, 9, DEFAULT_XZ_PRESET),
    }
}

/// The thread count for xz: `requested`, or the available cores for 0.
pub(crate) fn xz_threads(requested: u32) -> u32 {
    if requested != 0 {
        return requested;
    }
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` at `level` (the compression's default
    /// when `None`), with `threads` xz worker threads (0 = cores).
    pub(crate) fn new(
        out: W,
        compression: Compression,
        level: Option<u32>,
        threads: u32,
    ) -> Result<Self, CompressError> {
        let (min, max, default) = levels(compression);
        let level = level.unwrap_or(default);
        if level < min || level > max {
            return Err(CompressError::BadLevel {
                compression,
                level,
                min,
                max,
            });
        }
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(out, flate2::Compression::new(level)),
            ),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                out,
                bzip2::Compression::new(level),
            )),
            Compression::Xz => {
                let threads = xz_threads(threads);
                let stream = MtStreamBuilder::new()
                    .threads(threads)
                    .preset(level)
                    // 0 = liblzma's default for the preset (3 × dict size),
                    // the same for every thread count.
                    .block_size(0)
                    .check(Check::Crc64)
                    .timeout_ms(0)
                    .encoder()
                    .map_err(|source| CompressError::Xz { threads, source })?;
                Encoder::Xz(xz2::write::XzEncoder::new_stream(out, stream))
            }
        })
    }

    /// Writes the compression trailer and returns the underlying writer,
    /// flushed.
    pub(crate) fn finish(self) -> io::Result<W> {
        let mut out = match self {
            Encoder::None(w) => w,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Bzip2(e) => e.finish()?,
            Encoder::Xz(e) => e.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Bzip2(e) => e.write_all(buf),
            Encoder::Xz(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Semi-compressible input of `len` bytes: text-like with some variety.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = (x >> 16) % 64;
            out.extend_from_slice(format!("word{word} ").as_bytes());
        }
        out.truncate(len);
        out
    }

    fn compress(data: &[u8], c: Compression, level: Option<u32>, threads: u32) -> Vec<u8> {
        let mut enc = Encoder::new(Vec::new(), c, level, threads).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn every_encoder_round_trips() {
        let data = sample(300_000);
        for c in Compression::ALL {
            let packed = compress(&data, c, None, 2);
            let mut back = Vec::new();
            match c {
                Compression::None => back = packed.clone(),
                Compression::Gzip => {
                    flate2::read::MultiGzDecoder::new(&packed[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Bzip2 => {
                    bzip2::read::BzDecoder::new(&packed[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Xz => {
                    xz2::read::XzDecoder::new(&packed[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
            }
            assert_eq!(back, data, "{c}");
            if c != Compression::None {
                assert!(packed.len() < data.len() / 2, "{c} compresses");
            }
        }
    }

    #[test]
    fn gzip_header_has_no_time_and_no_name() {
        let out = compress(b"x", Compression::Gzip, None, 0);
        assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0], "deflate, no flags");
        assert_eq!(&out[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(out[9], 255, "OS unknown");
    }

    #[test]
    fn xz_output_does_not_depend_on_thread_count() {
        // Preset 0 has a 256 KiB dictionary, so blocks are 1 MiB and 5 MiB of
        // input really is split over several threads.
        let data = sample(5 << 20);
        let one = compress(&data, Compression::Xz, Some(0), 1);
        for threads in [2, 3, 8] {
            assert!(
                one == compress(&data, Compression::Xz, Some(0), threads),
                "xz output differs with {threads} threads"
            );
        }
        // The check is CRC64 (stream flags byte 1 = 0x04), as `xz` writes.
        assert_eq!(&one[..8], &[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4]);
    }

    #[test]
    fn levels_are_checked() {
        for (c, bad) in [
            (Compression::Gzip, 10),
            (Compression::Bzip2, 0),
            (Compression::Xz, 10),
            (Compression::None, 1),
        ] {
            assert!(matches!(
                Encoder::new(Vec::new(), c, Some(bad), 1),
                Err(CompressError::BadLevel { level, .. }) if level == bad
            ));
        }
    }

    #[test]
    fn zero_threads_means_cores() {
        assert!(xz_threads(0) >= 1);
        assert_eq!(xz_threads(3), 3);
    }
}

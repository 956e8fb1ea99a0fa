//! pcap files of format 2.0-2.2, whose record lengths libpcap swaps, read as libpcap reads
//! them.

use super::*;

/// Records of a classic pcap whose header says version 2.0 to 2.2.
pub(super) struct SwappedPcap {
    pub(super) r: BufReader<File>,
    pub(super) big_endian: bool,
    pub(super) linktype: u32,
    pub(super) frac_ns: u64,
    pub(super) data: Vec<u8>,
}

/// Largest record weir reads from such a file (libpcap's largest snapshot length).
pub(super) const MAX_SWAPPED_RECORD: usize = 262_144;

impl SwappedPcap {
    /// The next record: `Ok(None)` at a clean end of file.
    pub(super) fn next(&mut self) -> Result<Option<(u32, u32, u32)>, String> {
        let mut h = [0u8; 16];
        let mut got = 0;
        while got < h.len() {
            match self.r.read(&mut h[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        if got == 0 {
            return Ok(None);
        }
        if got < h.len() {
            return Err(format!(
                "the file ends inside a record header ({got} of 16 bytes)"
            ));
        }
        let f = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        // Swapped: the third field is the original length, the fourth the captured one.
        let (sec, frac, orig, incl) = (f(0), f(4), f(8), f(12));
        let incl = incl as usize;
        if incl > MAX_SWAPPED_RECORD {
            return Err(format!("a record of {incl} captured bytes"));
        }
        self.data.resize(incl, 0);
        self.r
            .read_exact(&mut self.data)
            .map_err(|e| format!("the file ends inside a record ({e})"))?;
        Ok(Some((sec, frac, orig)))
    }
}
/// A classic pcap of format 2.0 to 2.2 gets its own reader (see [`Inner::PcapSwapped`]).
pub(super) fn swapped_pcap(
    path: &Path,
    hdr: &pcap_file::pcap::PcapHeader,
    linktype: u32,
    frac_ns: u64,
) -> std::io::Result<Option<SwappedPcap>> {
    if !(hdr.version_major == 2 && hdr.version_minor < 3) {
        return Ok(None);
    }
    let mut f = File::open(path)?;
    if !f.metadata()?.is_file() {
        // Read apart from the reader that took the header: a pipe has no second reading.
        return Err(std::io::Error::other(
            "a pcap of format 2.0-2.2 (lengths swapped by old libpcap) is read from a file, \
             not a pipe",
        ));
    }
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(24))?;
    Ok(Some(SwappedPcap {
        r: BufReader::with_capacity(1 << 20, f),
        big_endian: hdr.endianness == pcap_file::Endianness::Big,
        linktype,
        frac_ns,
        data: Vec::with_capacity(65536),
    }))
}

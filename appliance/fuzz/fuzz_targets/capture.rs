//! Fuzz the capture input path (`weir::capture::CaptureReader` + `to_ethernet` + the parser):
//! any file is refused with an error naming it, or read packet by packet until its end or a
//! "corrupt capture" error naming the file; every packet time handed out is within
//! 1970..=`MAX_TS_NS` (pcapng's `if_tsresol`/`if_tsoffset` are clamped, never wrapped); never
//! a panic, never an allocation beyond libFuzzer's limit.
//! The reader takes a path, so each input is written to a file on tmpfs first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use weir::capture::{to_ethernet, CaptureError, CaptureReader, MAX_TS_NS};
use weir::parse::parse;
use weir_plugin_api::{FlowKeyV1, PacketV1};

fn scratch_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("weir-fuzz-capture-{}.pcap", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_path();
    std::fs::write(path, data).expect("write the scratch capture");
    let mut rd = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            assert!(matches!(e, CaptureError::NotACapture { .. }), "{e}");
            assert!(e.to_string().contains(&*path.to_string_lossy()));
            return;
        }
    };
    let mut scratch = Vec::new();
    let mut read = 0u64;
    loop {
        let r = rd.next_with(|p| {
            assert!(p.data.len() <= data.len());
            assert!(p.ts_ns <= MAX_TS_NS, "time {} past the range", p.ts_ns);
            if let Some(frame) = to_ethernet(p.linktype, p.data, &mut scratch) {
                let mut pkt = PacketV1::EMPTY;
                let mut key = FlowKeyV1::default();
                let _ = parse(frame, p.orig_len, p.ts_ns, &mut pkt, &mut key);
            }
        });
        match r {
            Ok(Some(())) => read += 1,
            Ok(None) => break,
            Err(e) => {
                assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
                assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
                break;
            }
        }
        // A record is at least 16 bytes: more packets than that is a reader gone round.
        assert!(
            read <= data.len() as u64 / 8 + 1,
            "{read} packets from {} bytes",
            data.len()
        );
    }
    assert_eq!(rd.packets(), read);
});

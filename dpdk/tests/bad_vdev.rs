//! EAL that cannot start: a clear error naming the arguments and the reason, never a panic;
//! and the EAL cannot be retried in the same process.

use weir_dpdk::{Eal, Error, Mempool, Port, DEFAULT_DATA_ROOM, SOCKET_ANY};

#[test]
fn bad_vdev_is_a_clear_error() {
    let missing = "/nonexistent/weir/capture.pcap";
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--vdev=net_pcap0,rx_pcap={missing}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let err = Eal::init(&args).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    // EAL itself starts (it only logs the failed probe); the wrapper notices the missing port.
    assert!(matches!(err, Error::VdevNotCreated { .. }), "{err:?}");
    assert!(msg.contains("EAL init"), "{msg}");
    assert!(
        msg.contains(&format!("\"net_pcap0,rx_pcap={missing}\"")),
        "names the vdev: {msg}"
    );

    // Nothing DPDK is usable, and says why instead of crashing.
    assert!(Eal::current().is_none());
    let err = Mempool::new_pktmbuf("p", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ANY).unwrap_err();
    assert!(matches!(err, Error::EalNotInitialized(_)), "{err}");
    assert!(matches!(
        Port::by_name("net_pcap0"),
        Err(Error::EalNotInitialized(_))
    ));
    assert!(Port::available().is_empty());
    assert!(matches!(
        Eal::init(&args),
        Err(Error::EalAlreadyInitialized)
    ));
}

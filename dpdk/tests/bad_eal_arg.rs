//! An option EAL rejects: `rte_eal_init` fails and the error carries rte_errno's text and args.

use weir_dpdk::{Eal, Error};

#[test]
fn bad_eal_option_is_a_clear_error() {
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "--definitely-not-an-eal-option",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let err = Eal::init(&args).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    match &err {
        Error::EalInit {
            errno,
            reason,
            args: a,
        } => {
            assert_eq!(a, &args);
            assert!(*errno != 0 && !reason.is_empty(), "{err:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains("--definitely-not-an-eal-option"), "{msg}");
    assert!(matches!(
        Eal::init(&args),
        Err(Error::EalAlreadyInitialized)
    ));
}

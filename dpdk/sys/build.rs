//! Generates the bindings to the system DPDK and compiles the C shim.
//!
//! DPDK is found with pkg-config (`libdpdk`, any version). Its `--cflags` are used both for
//! libclang (bindgen) and for the C compiler, because DPDK's headers depend on them
//! (`-include rte_config.h`, `-march=...` for the SSE/AVX intrinsics of the inline functions).
//! Static-inline functions (rx burst, mbuf alloc, rte_rdtsc, ...) have no symbol in the
//! shared libraries: bindgen's `wrap_static_fns` writes a C file with one exported wrapper per
//! function, which is compiled here into `libweir_dpdk_shim.a`.
//!
//! libpcap is bound here too (found with pkg-config's `libpcap`): weir compiles capture
//! filters with its `pcap_compile` and runs them itself, so only the compiler is needed.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/weir_dpdk.h");
    println!("cargo:rerun-if-changed=shim/weir_dpdk.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (-L if any, -l rte_*) are emitted by the pkg-config crate. A .pc file without
    // -L (the library in the default linker path, as on Debian) simply gives no search path.
    let lib = pkg_config::Config::new()
        .cargo_metadata(true)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("weir-dpdk-sys: pkg-config could not find libdpdk: {e}"));
    // rte_eth_from_rings lives in the ring PMD, which libdpdk.pc does not list among the
    // shared libraries (PMDs are plugins); link it explicitly.
    println!("cargo:rustc-link-lib=rte_net_ring");
    // libpcap for `pcap_compile` (capture filters). Only its link flags: its --cflags name
    // unrelated include paths on Debian, and its header is in the default search path.
    pkg_config::Config::new()
        .cargo_metadata(true)
        .probe("libpcap")
        .unwrap_or_else(|e| panic!("weir-dpdk-sys: pkg-config could not find libpcap: {e}"));
    // The DPDK version built against (`weir_dpdk_sys::DPDK_VERSION`, for build information).
    println!("cargo:rustc-env=WEIR_DPDK_VERSION={}", lib.version);

    let cflags = raw_cflags();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrappers = out.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header("shim/weir_dpdk.h")
        .clang_args(&cflags)
        .clang_args(
            lib.include_paths
                .iter()
                .map(|p| format!("-I{}", p.display())),
        )
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_ring_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*lcore.*")
        .allowlist_function("rte_socket_.*")
        .allowlist_function("rte_rdtsc.*")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_remote_launch")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_zmalloc_socket")
        .allowlist_function("rte_free")
        .allowlist_function("rte_softrss.*")
        .allowlist_function("rte_thash_load_v6_addrs")
        .allowlist_function("weir_.*")
        .allowlist_function("pcap_open_dead")
        .allowlist_function("pcap_compile")
        .allowlist_function("pcap_geterr")
        .allowlist_function("pcap_freecode")
        .allowlist_function("pcap_close")
        .allowlist_type("bpf_program")
        .allowlist_type("bpf_insn")
        .allowlist_var("DLT_EN10MB")
        .allowlist_var("PCAP_NETMASK_UNKNOWN")
        .allowlist_var("WEIR_.*")
        .allowlist_var("RTE_MAX_.*")
        .allowlist_var("RTE_ETHDEV_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_THASH_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RING_F_.*")
        .allowlist_type("rte_ipv4_tuple")
        .allowlist_type("rte_ipv6_tuple")
        .allowlist_type("rte_eth_conf")
        // Packed protocol headers with bitfields that Rust cannot represent; unused here.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("weir-dpdk-sys: bindgen failed on the DPDK headers");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("weir-dpdk-sys: cannot write bindings.rs");

    // The generated wrappers include our header by a path relative to this crate.
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c"))
        .file("shim/weir_dpdk.c")
        .include(&manifest)
        .include(manifest.join("shim"))
        .opt_level(3)
        .warnings(false);
    for p in &lib.include_paths {
        cc.include(p);
    }
    for f in &cflags {
        cc.flag(f);
    }
    cc.compile("weir_dpdk_shim");
}

/// `pkg-config --cflags libdpdk`, split on whitespace (DPDK's flags contain no quoted spaces).
/// `-I` flags are kept too; `-include rte_config.h` stays two arguments in order.
fn raw_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("weir-dpdk-sys: cannot run {pkg_config}: {e}"));
    assert!(
        out.status.success(),
        "weir-dpdk-sys: `{pkg_config} --cflags libdpdk` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

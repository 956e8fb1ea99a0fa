//! The C header and the Rust mirror cannot drift: compile `tests/c/layout.c` against
//! `include/weir_plugin.h` with the system C compiler (`$CC`, default `cc`; its static
//! assertions repeat the numbers of `src/abi.rs`), run it, and compare every size, offset and
//! constant it prints with what Rust computes for the mirror.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use weir_plugin_api::*;

fn c_layout() -> HashMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir_layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("tests/c/layout.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        status.success(),
        "tests/c/layout.c did not compile: {status}"
    );
    let run = Command::new(&out).output().expect("run the layout program");
    assert!(
        run.status.success(),
        "layout program failed: {:?}",
        run.status
    );
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("NAME VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn c_and_rust_agree_on_every_size_offset_and_constant() {
    let c = c_layout();
    let mut rust: Vec<(&str, String)> = Vec::new();
    macro_rules! size {
        ($c:literal, $t:ty) => {
            rust.push(($c, size_of::<$t>().to_string()))
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident),+) => {
            $( rust.push((concat!($c, ".", stringify!($f)), offset_of!($t, $f).to_string())); )+
        };
    }
    macro_rules! konst {
        ($($k:ident),+) => { $( rust.push((stringify!($k), ($k as i64).to_string())); )+ };
    }
    size!("weir_packet_v1", PacketV1);
    off!(
        "weir_packet_v1",
        PacketV1,
        ts_ns,
        data,
        wire_len,
        cap_len,
        l3_off,
        l4_off,
        payload_off,
        payload_len,
        ip_len,
        direction,
        ip_version,
        protocol,
        tcp_flags,
        tcp_window,
        tcp_seq,
        tcp_ack,
        ttl,
        flags,
        tcp_hdr_len,
        reserved
    );
    size!("weir_flow_key_v1", FlowKeyV1);
    off!(
        "weir_flow_key_v1",
        FlowKeyV1,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        vlan_id,
        protocol,
        ip_version,
        tunnel_id,
        reserved
    );
    size!("weir_feature_v1", FeatureV1);
    off!(
        "weir_feature_v1",
        FeatureV1,
        name,
        kind,
        reserved,
        description
    );
    size!("weir_text_v1", TextV1);
    off!("weir_text_v1", TextV1, buf, cap, len);
    size!("weir_plugin_v1", PluginV1);
    off!(
        "weir_plugin_v1",
        PluginV1,
        magic,
        abi_major,
        abi_minor,
        struct_size,
        flags,
        name,
        version,
        description,
        features,
        n_features,
        state_size,
        state_align,
        reserved0,
        config_schema,
        create,
        destroy,
        flow_init,
        update_burst,
        flow_emit,
        last_error,
        interval_emit,
        interval_state_size,
        reserved1,
        update_burst_intervals,
        flow_state_size,
        flow_emit_text
    );
    konst!(
        WEIR_PLUGIN_MAGIC,
        WEIR_ABI_MAJOR,
        WEIR_ABI_MINOR,
        WEIR_OK,
        WEIR_ERR,
        WEIR_DIR_SRC_TO_DST,
        WEIR_DIR_DST_TO_SRC,
        WEIR_PKT_FIRST_OF_FLOW,
        WEIR_PKT_IP_FRAGMENT,
        WEIR_PKT_TUNNELED,
        WEIR_TCP_FIN,
        WEIR_TCP_SYN,
        WEIR_TCP_RST,
        WEIR_TCP_PSH,
        WEIR_TCP_ACK,
        WEIR_TCP_URG,
        WEIR_TCP_ECE,
        WEIR_TCP_CWR,
        WEIR_NO_OFFSET,
        WEIR_FEATURE_F64,
        WEIR_FEATURE_U64,
        WEIR_FEATURE_BOOL,
        WEIR_FEATURE_TEXT,
        WEIR_TEXT_MAX,
        WEIR_TEXT_MISSING
    );
    rust.push(("WEIR_PLUGIN_V1_0_SIZE", PLUGIN_V1_0_SIZE.to_string()));
    rust.push(("WEIR_PLUGIN_V1_1_SIZE", PLUGIN_V1_1_SIZE.to_string()));
    rust.push(("WEIR_PLUGIN_V1_2_SIZE", PLUGIN_V1_2_SIZE.to_string()));
    rust.push(("WEIR_PLUGIN_V1_3_SIZE", PLUGIN_V1_3_SIZE.to_string()));
    let sym = std::str::from_utf8(WEIR_PLUGIN_ENTRY_SYMBOL)
        .unwrap()
        .trim_end_matches('\0');
    rust.push(("WEIR_PLUGIN_ENTRY_SYMBOL", sym.to_owned()));

    for (name, value) in &rust {
        let cv = c
            .get(*name)
            .unwrap_or_else(|| panic!("layout.c does not print {name}"));
        assert_eq!(cv, value, "{name}: C says {cv}, Rust says {value}");
    }
    assert_eq!(
        rust.len(),
        c.len(),
        "layout.c prints items the Rust side does not check"
    );
}

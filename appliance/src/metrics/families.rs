//! Writing one metric family: its descriptor, then one sample per label set.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

pub(super) type Out = Result<(), std::fmt::Error>;
pub(super) type Labels = Vec<(&'static str, String)>;

/// One metric family being written: its descriptor, then one sample per label set.
pub(super) fn family<'a>(
    enc: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    unit: Option<&'a Unit>,
    ty: MetricType,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(name, help, unit, ty)
}

pub(super) fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels, u64)],
) -> Out {
    if samples.is_empty() {
        return Ok(());
    }
    let mut f = family(enc, name, help, unit, MetricType::Counter)?;
    if let [(l, v)] = samples {
        if l.is_empty() {
            return ConstCounter::new(*v).encode(f);
        }
    }
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

pub(super) fn gauges<V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels, V)],
) -> Out {
    if samples.is_empty() {
        return Ok(());
    }
    let mut f = family(enc, name, help, unit, MetricType::Gauge)?;
    if let [(l, v)] = samples {
        if l.is_empty() {
            return ConstGauge::new(*v).encode(f);
        }
    }
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(f.encode_family(labels)?)?;
    }
    Ok(())
}

pub(super) fn w(i: usize) -> Labels {
    vec![("worker", i.to_string())]
}

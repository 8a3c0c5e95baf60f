//! One scrape's worth of metrics, encoded by `prometheus-client` in the
//! OpenMetrics text format. Salon's counters are relaxed atomics updated on
//! the hot paths (no locks, no allocation); at scrape time their values are
//! gathered into an [`Exposition`] and encoded through a
//! `prometheus_client::collector::Collector`, so names, escaping, `_total`
//! suffixes, histogram buckets and the final `# EOF` follow the format
//! without hand-written text. The gateway and mediad each build one; the
//! gateway's `/metrics` joins them ([`join`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of [`Exposition::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Gauge(f64),
    /// A gauge of whole numbers (written without a decimal point).
    GaugeInt(i64),
    /// Sum, count, and (upper bound, count in that bucket) — not
    /// cumulative; the last bound is `f64::INFINITY`.
    Histogram(f64, u64, Vec<(f64, u64)>),
}

#[derive(Debug, Clone)]
struct Family {
    /// Without `_total` for counters (the encoder adds it).
    name: String,
    help: String,
    samples: Vec<(Labels, Value)>,
}

/// Metrics gathered for one scrape.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, name: &str, help: &str) -> &mut Family {
        let name = name.strip_suffix("_total").unwrap_or(name);
        let help = help.trim_end_matches('.');
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            return &mut self.families[i];
        }
        self.families.push(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: Vec::new(),
        });
        let last = self.families.len() - 1;
        &mut self.families[last]
    }

    /// A counter (`name` with or without its `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help)
            .samples
            .push((Vec::new(), Value::Counter(value)));
    }

    /// One labelled sample of a counter family.
    pub fn counter_with(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.family(name, help)
            .samples
            .push((owned(labels), Value::Counter(value)));
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help)
            .samples
            .push((Vec::new(), Value::Gauge(value)));
    }

    /// One labelled sample of a gauge family.
    pub fn gauge_with(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, help)
            .samples
            .push((owned(labels), Value::Gauge(value)));
    }

    /// A gauge of whole numbers (a count, bytes).
    pub fn gauge_int(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help).samples.push((
            Vec::new(),
            Value::GaugeInt(i64::try_from(value).unwrap_or(i64::MAX)),
        ));
    }

    /// One labelled sample of a whole-number gauge family.
    pub fn gauge_int_with(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.family(name, help).samples.push((
            owned(labels),
            Value::GaugeInt(i64::try_from(value).unwrap_or(i64::MAX)),
        ));
    }

    /// A histogram: `buckets` are (upper bound, observations in that
    /// bucket only), ascending; observations above the last bound go to
    /// `+Inf` (`count` minus the buckets' sum).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        sum: f64,
        count: u64,
        buckets: &[(f64, u64)],
    ) {
        let mut b = buckets.to_vec();
        let inside: u64 = buckets.iter().map(|(_, n)| n).sum();
        b.push((f64::INFINITY, count.saturating_sub(inside)));
        self.family(name, help)
            .samples
            .push((Vec::new(), Value::Histogram(sum, count, b)));
    }

    /// The OpenMetrics text (ends with `# EOF`).
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug
        // in a name, and the scrape then shows what was written.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let Some((_, first)) = f.samples.first() else {
                continue;
            };
            let kind = match first {
                Value::Counter(_) => MetricType::Counter,
                Value::Gauge(_) | Value::GaugeInt(_) => MetricType::Gauge,
                Value::Histogram(..) => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(&f.name, &f.help, None, kind)?;
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    encode_value(&mut metric, value)?;
                } else {
                    encode_value(&mut metric.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(target: &mut MetricEncoder<'_>, value: &Value) -> Result<(), std::fmt::Error> {
    match value {
        Value::Counter(v) => target.encode_counter::<NoLabelSet, u64, u64>(v, None),
        Value::Gauge(v) => target.encode_gauge(v),
        Value::GaugeInt(v) => target.encode_gauge(v),
        Value::Histogram(sum, count, buckets) => {
            target.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)
        }
    }
}

/// Joins OpenMetrics texts (each ending with `# EOF`) into one exposition
/// with a single `# EOF`.
pub fn join(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        let body = p.trim_end();
        let body = body.strip_suffix("# EOF").unwrap_or(body);
        out.push_str(body.trim_end());
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_gauges_families_and_histograms() {
        let mut e = Exposition::new();
        e.counter("mediad_tx_rtp_total", "RTP packets forwarded.", 42);
        e.gauge_with("mediad_stress", "Load.", &[("worker", "0")], 0.25);
        e.gauge_with("mediad_stress", "Load.", &[("worker", "1")], 0.5);
        e.histogram(
            "mediad_rtt_ms",
            "Round trips.",
            90.0,
            3,
            &[(10.0, 1), (50.0, 1)],
        );
        let text = e.encode();
        assert!(text.contains("# TYPE mediad_tx_rtp counter\n"), "{text}");
        assert!(text.contains("mediad_tx_rtp_total 42\n"), "{text}");
        assert!(text.contains("mediad_stress{worker=\"1\"} 0.5\n"), "{text}");
        assert!(
            text.contains("mediad_rtt_ms_bucket{le=\"50.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mediad_rtt_ms_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        let joined = join(&[&text, &text]);
        assert_eq!(joined.matches("# EOF").count(), 1);
    }
}

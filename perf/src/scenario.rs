//! Scenario files: rooms × participants per room × media mix × join rate ×
//! duration, in TOML. Unknown keys are refused and every error names the
//! line it comes from.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML, a wrong type or an unknown key.
    #[error("line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Valid TOML whose values make no sense.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The media each synthetic participant sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Opus-like audio payload size (bytes), one packet every 20 ms.
    pub audio_payload_bytes: usize,
    /// VP8-like payload size of every video packet (bytes).
    pub video_payload_bytes: usize,
    /// Video frames per second.
    pub video_fps: u32,
    /// Packets per delta frame.
    pub video_packets_per_frame: u32,
    /// Packets per key frame.
    pub keyframe_packets: u32,
    /// Seconds between periodic key frames.
    pub keyframe_interval_s: f64,
    /// Publish video as three simulcast layers (rids `l`, `m`, `h`:
    /// 320x180 ~150 kbit/s, 640x360 ~500 kbit/s, 1280x720 ~1.5 Mbit/s at
    /// 30 fps, see [`SIMULCAST_LAYERS`]) instead of one stream shaped by
    /// `video_payload_bytes` / `video_packets_per_frame` / `keyframe_packets`.
    pub simulcast: bool,
}

/// One simulcast layer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    /// `a=rid` name.
    pub rid: &'static str,
    /// Frame width written in key frames.
    pub width: u16,
    /// Frame height written in key frames.
    pub height: u16,
    /// Payload bytes per packet (VP8 descriptor and stamp included).
    pub payload_bytes: usize,
    /// Packets per delta frame.
    pub packets_per_frame: u32,
    /// Packets per key frame.
    pub keyframe_packets: u32,
}

/// The three layers, lowest first. At 30 fps (RTP/UDP headers not counted):
/// low 1 × 620 B ≈ 150 kbit/s, mid 2 × 1040 B ≈ 500 kbit/s, high
/// 6 × 1040 B ≈ 1.5 Mbit/s; key frames about four times a delta frame.
pub const SIMULCAST_LAYERS: [LayerShape; 3] = [
    LayerShape {
        rid: "l",
        width: 320,
        height: 180,
        payload_bytes: 620,
        packets_per_frame: 1,
        keyframe_packets: 4,
    },
    LayerShape {
        rid: "m",
        width: 640,
        height: 360,
        payload_bytes: 1040,
        packets_per_frame: 2,
        keyframe_packets: 8,
    },
    LayerShape {
        rid: "h",
        width: 1280,
        height: 720,
        payload_bytes: 1040,
        packets_per_frame: 6,
        keyframe_packets: 24,
    },
];

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            audio_payload_bytes: 80,
            video_payload_bytes: 1000,
            video_fps: 30,
            video_packets_per_frame: 2,
            keyframe_packets: 8,
            keyframe_interval_s: 2.0,
            simulcast: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    rooms: Spanned<u32>,
    room_sizes: Spanned<Vec<u32>>,
    video_fraction: Spanned<f64>,
    join_rate: Spanned<f64>,
    duration_s: Spanned<f64>,
    #[serde(default)]
    media: Option<Spanned<MediaConfig>>,
    #[serde(default)]
    churn: Option<Spanned<ChurnConfig>>,
}

/// Churn: participants come and go at random for the whole run
/// (`docs/perf.md`, "Churn"). `room_sizes` is then the number each room
/// holds present: every departure is followed by an arrival.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnConfig {
    /// Mean time a participant stays (exponential), seconds.
    pub mean_stay_s: f64,
    /// Shortest stay, seconds.
    pub min_stay_s: f64,
    /// Fraction of departures that are reloads (leave, then a new
    /// participant after `reload_pause_s`).
    pub reload_fraction: f64,
    /// Fraction of departures that drop the signaling socket abruptly
    /// (no `leave`, no close frame).
    pub drop_fraction: f64,
    /// Pause between a reload's leave and its new join, seconds.
    pub reload_pause_s: f64,
    /// A replacement for a leave or a drop arrives after a uniform random
    /// delay within `0..arrival_gap_s`.
    pub arrival_gap_s: f64,
    /// Fraction of participants that, once during their stay, lose their
    /// signaling socket abruptly and take their place back with the
    /// resume token (`docs/signaling.md`, "Reconnect") after
    /// `resume_pause_s`. Needs `reconnect_grace_s` above the pause.
    pub resume_fraction: f64,
    /// Of those resumes, the fraction that are page reloads: the old
    /// transports are dropped too and the resume asks for `media: "new"`
    /// (new ICE/DTLS transports, a new publish offer); the others keep
    /// their media (`media: "kept"`, a Wi-Fi blink).
    pub resume_reload_fraction: f64,
    /// Socket down this long before the resume, seconds.
    pub resume_pause_s: f64,
    /// The spawned `salon`'s `--reconnect-grace-secs`: how long a dropped
    /// participant keeps its place. 0: a drop is a departure at once.
    pub reconnect_grace_s: f64,
    /// Seed of every random choice (stays, departures, video).
    pub seed: u64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            mean_stay_s: 20.0,
            min_stay_s: 2.0,
            reload_fraction: 0.2,
            drop_fraction: 0.2,
            reload_pause_s: 1.0,
            arrival_gap_s: 2.0,
            resume_fraction: 0.0,
            resume_reload_fraction: 0.5,
            resume_pause_s: 1.0,
            reconnect_grace_s: 0.0,
            seed: 1,
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (reports, room names).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Number of rooms.
    pub rooms: u32,
    /// Participants per room, cycled over the rooms (room `r` has
    /// `room_sizes[r % len]`).
    pub room_sizes: Vec<u32>,
    /// Fraction of participants that also publish video (all publish audio).
    pub video_fraction: f64,
    /// Participants joining per second.
    pub join_rate: f64,
    /// Measured time once everybody is connected, in seconds.
    pub duration_s: f64,
    /// Media shape.
    pub media: MediaConfig,
    /// Churn mode (participants come and go), when present.
    pub churn: Option<ChurnConfig>,
}

/// One participant to create, in join order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedParticipant {
    /// Index in join order.
    pub index: usize,
    /// Room index.
    pub room: u32,
    /// Publishes video too.
    pub video: bool,
}

fn line_of(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn invalid(text: &str, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        line: line_of(text, span.start).0,
        message: message.into(),
    }
}

impl Scenario {
    /// Read and validate a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parse and validate scenario text.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_of(text, s.start));
            ScenarioError::Parse {
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let name = raw.name.get_ref();
        if name.is_empty()
            || name.len() > 32
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                text,
                raw.name.span(),
                "name must be 1-32 characters of A-Z a-z 0-9 -",
            ));
        }
        if *raw.rooms.get_ref() == 0 || *raw.rooms.get_ref() > 10_000 {
            return Err(invalid(text, raw.rooms.span(), "rooms must be 1..=10000"));
        }
        let sizes = raw.room_sizes.get_ref();
        if sizes.is_empty() || sizes.iter().any(|&s| s == 0 || s > 1000) {
            return Err(invalid(
                text,
                raw.room_sizes.span(),
                "room_sizes must be a non-empty list of 1..=1000",
            ));
        }
        let vf = *raw.video_fraction.get_ref();
        if !(0.0..=1.0).contains(&vf) {
            return Err(invalid(
                text,
                raw.video_fraction.span(),
                "video_fraction must be within 0..=1",
            ));
        }
        let jr = *raw.join_rate.get_ref();
        if !(jr > 0.0 && jr <= 10_000.0) {
            return Err(invalid(
                text,
                raw.join_rate.span(),
                "join_rate must be > 0 and <= 10000 participants/s",
            ));
        }
        let d = *raw.duration_s.get_ref();
        if !(d > 0.0 && d <= 86_400.0) {
            return Err(invalid(
                text,
                raw.duration_s.span(),
                "duration_s must be > 0 and <= 86400",
            ));
        }
        let media = match raw.media {
            Some(m) => {
                let span = m.span();
                let m = m.into_inner();
                if !(32..=1100).contains(&m.audio_payload_bytes)
                    || !(32..=1100).contains(&m.video_payload_bytes)
                {
                    return Err(invalid(text, span, "payload sizes must be 32..=1100 bytes"));
                }
                let ok = (1..=120).contains(&m.video_fps)
                    && (1..=50).contains(&m.video_packets_per_frame)
                    && (1..=200).contains(&m.keyframe_packets)
                    && (0.1..=600.0).contains(&m.keyframe_interval_s);
                if !ok {
                    return Err(invalid(
                        text,
                        span,
                        "video_fps 1..=120, video_packets_per_frame 1..=50, keyframe_packets 1..=200, keyframe_interval_s 0.1..=600",
                    ));
                }
                m
            }
            None => MediaConfig::default(),
        };
        let churn = match raw.churn {
            Some(c) => {
                let span = c.span();
                let c = c.into_inner();
                let ok = (0.5..=3600.0).contains(&c.mean_stay_s)
                    && (0.0..=c.mean_stay_s).contains(&c.min_stay_s)
                    && (0.0..=1.0).contains(&c.reload_fraction)
                    && (0.0..=1.0).contains(&c.drop_fraction)
                    && c.reload_fraction + c.drop_fraction <= 1.0
                    && (0.0..=60.0).contains(&c.reload_pause_s)
                    && (0.0..=60.0).contains(&c.arrival_gap_s)
                    && (0.0..=1.0).contains(&c.resume_fraction)
                    && (0.0..=1.0).contains(&c.resume_reload_fraction)
                    && (0.0..=60.0).contains(&c.resume_pause_s)
                    && (0.0..=600.0).contains(&c.reconnect_grace_s)
                    && (c.resume_fraction == 0.0 || c.reconnect_grace_s > c.resume_pause_s + 1.0);
                if !ok {
                    return Err(invalid(
                        text,
                        span,
                        "churn: mean_stay_s 0.5..=3600, min_stay_s 0..=mean_stay_s, reload_fraction and drop_fraction 0..=1 with a sum <= 1, reload_pause_s and arrival_gap_s 0..=60, resume_fraction and resume_reload_fraction 0..=1, resume_pause_s 0..=60, reconnect_grace_s 0..=600 and above resume_pause_s + 1 when resume_fraction > 0",
                    ));
                }
                Some(c)
            }
            None => None,
        };
        let s = Self {
            name: raw.name.into_inner(),
            description: raw.description,
            rooms: raw.rooms.into_inner(),
            room_sizes: raw.room_sizes.into_inner(),
            video_fraction: vf,
            join_rate: jr,
            duration_s: d,
            media,
            churn,
        };
        if s.participants() > 20_000 {
            return Err(ScenarioError::Invalid {
                line: 1,
                message: "more than 20000 participants in total".into(),
            });
        }
        Ok(s)
    }

    /// Size of room `r`.
    pub fn room_size(&self, r: u32) -> u32 {
        let n = self.room_sizes.len().max(1);
        self.room_sizes.get(r as usize % n).copied().unwrap_or(1)
    }

    /// Total participants.
    pub fn participants(&self) -> usize {
        (0..self.rooms).map(|r| self.room_size(r) as usize).sum()
    }

    /// Seconds the joins take at `join_rate`.
    pub fn ramp_s(&self) -> f64 {
        self.participants() as f64 / self.join_rate
    }

    /// Every participant in join order: rooms fill one after the other;
    /// participant `i` publishes video when `floor((i+1)·f) > floor(i·f)`,
    /// which spreads `video_fraction` evenly.
    pub fn plan(&self) -> Vec<PlannedParticipant> {
        let mut out = Vec::with_capacity(self.participants());
        for room in 0..self.rooms {
            for _ in 0..self.room_size(room) {
                let i = out.len();
                let f = self.video_fraction;
                let video = ((i + 1) as f64 * f).floor() > (i as f64 * f).floor();
                out.push(PlannedParticipant {
                    index: i,
                    room,
                    video,
                });
            }
        }
        out
    }
}

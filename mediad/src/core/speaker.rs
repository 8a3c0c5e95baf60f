//! Who is speaking: per-track speech activity from the audio level header
//! extension (RFC 6464), and the dominant speaker of a room.
//!
//! Each audio packet updates its track's activity in O(1): the level
//! (0 = loudest, 127 = silence, in -dBov) becomes a loudness in 0..1 and
//! feeds an exponential average with a 300 ms time constant. The worker
//! asks [`DominantSpeaker::update`] a few times a second with every track's
//! score; the loudest speaker above a threshold takes over only after
//! being clearly louder (1.5×) than the current one for 800 ms, so short
//! interjections and crosstalk do not flip the stage (a simplification of
//! the idea behind Volfin & Cohen's dominant speaker identification, which
//! Jitsi uses).

use std::time::{Duration, Instant};

const TIME_CONSTANT: f32 = 0.3;
/// Below this score nobody is speaking.
pub const SPEAKING_THRESHOLD: f32 = 0.15;
const TAKEOVER_RATIO: f32 = 1.5;
const TAKEOVER_HOLD: Duration = Duration::from_millis(800);
/// Levels quieter than this many dB below full scale count as silence.
const SILENCE_DBOV: u8 = 70;

/// Speech activity of one audio track.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpeechActivity {
    score: f32,
    at: Option<Instant>,
}

impl SpeechActivity {
    /// Feed the audio level byte of one packet (V bit ignored).
    pub fn on_level(&mut self, level_byte: u8, now: Instant) {
        let dbov = level_byte & 0x7f;
        let loudness = if dbov >= SILENCE_DBOV {
            0.0
        } else {
            f32::from(SILENCE_DBOV - dbov) / f32::from(SILENCE_DBOV)
        };
        // Continuous-time average: the old score decays over the gap and
        // the new sample fills what it lost.
        let dt = self.at.map_or(0.02, |t| {
            now.saturating_duration_since(t).as_secs_f32().max(0.001)
        });
        let keep = (-dt / TIME_CONSTANT).exp();
        self.score = self.score * keep + loudness * (1.0 - keep);
        self.at = Some(now);
    }

    /// The activity score at `now`, decaying towards 0 without packets.
    pub fn score_at(&self, now: Instant) -> f32 {
        match self.at {
            Some(t) => {
                let dt = now.saturating_duration_since(t).as_secs_f32();
                self.score * (-dt / TIME_CONSTANT).exp()
            }
            None => 0.0,
        }
    }
}

/// The dominant speaker of one room, with hysteresis.
#[derive(Debug, Clone)]
pub struct DominantSpeaker<K> {
    current: Option<K>,
    challenger: Option<(K, Instant)>,
}

impl<K> Default for DominantSpeaker<K> {
    fn default() -> Self {
        Self {
            current: None,
            challenger: None,
        }
    }
}

impl<K: Copy + PartialEq> DominantSpeaker<K> {
    /// The current dominant speaker.
    pub fn current(&self) -> Option<K> {
        self.current
    }

    /// Consider every speaker's score; returns the new dominant speaker when
    /// it changes.
    pub fn update(
        &mut self,
        scores: impl IntoIterator<Item = (K, f32)>,
        now: Instant,
    ) -> Option<K> {
        let mut loudest: Option<(K, f32)> = None;
        let mut current_score = 0.0f32;
        for (k, s) in scores {
            if Some(k) == self.current {
                current_score = s;
            }
            if loudest.is_none_or(|(_, best)| s > best) {
                loudest = Some((k, s));
            }
        }
        let Some((k, s)) = loudest.filter(|(_, s)| *s >= SPEAKING_THRESHOLD) else {
            self.challenger = None;
            return None;
        };
        if self.current.is_none() {
            self.current = Some(k);
            self.challenger = None;
            return Some(k);
        }
        if Some(k) == self.current || s < current_score * TAKEOVER_RATIO {
            self.challenger = None;
            return None;
        }
        match self.challenger {
            Some((c, since)) if c == k => {
                if now.saturating_duration_since(since) >= TAKEOVER_HOLD {
                    self.current = Some(k);
                    self.challenger = None;
                    return Some(k);
                }
                None
            }
            _ => {
                self.challenger = Some((k, now));
                None
            }
        }
    }

    /// Forget a speaker who left.
    pub fn remove(&mut self, k: K) {
        if self.current == Some(k) {
            self.current = None;
        }
        if self.challenger.is_some_and(|(c, _)| c == k) {
            self.challenger = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    /// Run two speakers for `ms` milliseconds with the given levels, 20 ms
    /// packets, deciding every 200 ms; returns the changes.
    fn run(
        acts: &mut [SpeechActivity; 2],
        dom: &mut DominantSpeaker<usize>,
        t: &mut Instant,
        ms: u64,
        level: impl Fn(usize, u64) -> u8,
    ) -> Vec<usize> {
        let mut changes = Vec::new();
        for step in 0..ms / 20 {
            *t += Duration::from_millis(20);
            for (i, a) in acts.iter_mut().enumerate() {
                a.on_level(level(i, step), *t);
            }
            if step % 10 == 9 {
                let scores = acts.iter().enumerate().map(|(i, a)| (i, a.score_at(*t)));
                if let Some(k) = dom.update(scores, *t) {
                    changes.push(k);
                }
            }
        }
        changes
    }

    #[test]
    fn the_loudest_takes_the_stage_after_a_hold_without_flapping() {
        let mut acts = [SpeechActivity::default(); 2];
        let mut dom = DominantSpeaker::default();
        let mut t = Instant::now();
        // Silence: nobody.
        assert!(run(&mut acts, &mut dom, &mut t, 1000, |_, _| 127).is_empty());
        // 0 speaks.
        assert_eq!(
            run(&mut acts, &mut dom, &mut t, 1000, |i, _| if i == 0 {
                20
            } else {
                127
            }),
            vec![0]
        );
        // 1 answers, 0 falls silent: 1 takes over, once.
        assert_eq!(
            run(&mut acts, &mut dom, &mut t, 2000, |i, _| if i == 1 {
                25
            } else {
                127
            }),
            vec![1]
        );
        // Short interjections of 0 (200 ms every second) over 1: no change.
        let changes = run(&mut acts, &mut dom, &mut t, 10_000, |i, step| match i {
            1 => 30,
            _ if step % 50 < 10 => 10,
            _ => 127,
        });
        assert!(changes.is_empty(), "{changes:?}");
        dom.remove(1);
        assert_eq!(dom.current(), None);
    }

    #[test]
    fn activity_decays_without_packets() {
        let mut a = SpeechActivity::default();
        let t = Instant::now();
        for i in 0..50 {
            a.on_level(0x80 | 10, t + Duration::from_millis(20 * i));
        }
        let loud = a.score_at(t + Duration::from_secs(1));
        assert!(loud > 0.5, "{loud}");
        assert!(a.score_at(t + Duration::from_secs(3)) < 0.01);
    }
}

//! Who is in radio range of whom: phones walking by the random waypoint model through a
//! square area (each walks to a random point at a random speed, pauses, walks on), a link
//! between two phones while they are within range; or the links a contact trace file gives.

use std::collections::{BTreeSet, HashMap};

use eyre::{WrapErr, bail};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A pair of phones `(a, b)` with `a < b`.
pub(crate) type Pair = (usize, usize);

/// How phones move.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waypoint {
    /// The side of the square area, in metres.
    pub(crate) area: f64,
    /// The radio range, in metres.
    pub(crate) range: f64,
    /// Walking speeds are drawn from this range, in metres a second.
    pub(crate) speed: (f64, f64),
    /// The longest pause at a waypoint, in seconds.
    pub(crate) max_pause: f64,
}

#[derive(Debug, Clone)]
struct Walker {
    at: (f64, f64),
    to: (f64, f64),
    speed: f64,
    pause: f64,
}

/// Phones on the move.
#[derive(Debug)]
pub(crate) struct Walkers {
    model: Waypoint,
    walkers: Vec<Walker>,
}

impl Walkers {
    /// `phones` phones at random points, each with a first waypoint.
    pub(crate) fn new(model: Waypoint, phones: usize, rng: &mut ChaCha8Rng) -> Self {
        let walkers = (0..phones)
            .map(|_| {
                let at = point(model.area, rng);
                Walker {
                    at,
                    to: point(model.area, rng),
                    speed: rng.random_range(model.speed.0..=model.speed.1),
                    pause: 0.0,
                }
            })
            .collect();
        Self { model, walkers }
    }

    /// Where each phone is.
    pub(crate) fn positions(&self) -> Vec<(f64, f64)> {
        self.walkers.iter().map(|walker| walker.at).collect()
    }

    /// Moves every phone on by `seconds`.
    pub(crate) fn step(&mut self, seconds: f64, rng: &mut ChaCha8Rng) {
        for walker in &mut self.walkers {
            let mut left = seconds;
            while left > 0.0 {
                if walker.pause > 0.0 {
                    let paused = walker.pause.min(left);
                    walker.pause -= paused;
                    left -= paused;
                    continue;
                }
                let (dx, dy) = (walker.to.0 - walker.at.0, walker.to.1 - walker.at.1);
                let distance = dx.hypot(dy);
                let reach = walker.speed * left;
                if reach < distance {
                    walker.at.0 += dx / distance * reach;
                    walker.at.1 += dy / distance * reach;
                    break;
                }
                walker.at = walker.to;
                left -= distance / walker.speed;
                walker.to = point(self.model.area, rng);
                walker.speed = rng.random_range(self.model.speed.0..=self.model.speed.1);
                walker.pause = rng.random_range(0.0..=self.model.max_pause);
            }
        }
    }

    /// The pairs within radio range now. Phones are bucketed in cells one range wide, so
    /// only neighbouring cells are compared: linear in the phones, not quadratic.
    pub(crate) fn links(&self) -> BTreeSet<Pair> {
        in_range(&self.positions(), self.model.range)
    }
}

fn point(area: f64, rng: &mut ChaCha8Rng) -> (f64, f64) {
    (rng.random_range(0.0..=area), rng.random_range(0.0..=area))
}

/// The pairs of `positions` at most `range` apart.
pub(crate) fn in_range(positions: &[(f64, f64)], range: f64) -> BTreeSet<Pair> {
    // Positions lie in [0, area] and the range is positive (both checked at the flags), so
    // each quotient is a small, finite, non-negative number: the cast keeps it whole.
    let cell = |(x, y): (f64, f64)| ((x / range).floor() as i64, (y / range).floor() as i64);
    let mut cells: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (index, position) in positions.iter().enumerate() {
        cells.entry(cell(*position)).or_default().push(index);
    }
    let mut pairs = BTreeSet::new();
    for (index, position) in positions.iter().enumerate() {
        let (cx, cy) = cell(*position);
        for nx in cx - 1..=cx + 1 {
            for ny in cy - 1..=cy + 1 {
                for &other in cells.get(&(nx, ny)).into_iter().flatten() {
                    let near = (positions[other].0 - position.0)
                        .hypot(positions[other].1 - position.1)
                        <= range;
                    if other > index && near {
                        pairs.insert((index, other));
                    }
                }
            }
        }
    }
    pairs
}

/// A contact trace: at `seconds` after the start, the link between two phones comes up or
/// goes down. One `seconds,a,b,up|down` line each; `#` starts a comment.
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    events: Vec<(u64, Pair, bool)>,
    next: usize,
    links: BTreeSet<Pair>,
}

impl Trace {
    /// Reads a trace for `phones` phones.
    pub(crate) fn read(path: &std::path::Path, phones: usize) -> eyre::Result<Self> {
        let text = std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read the trace {}", path.display()))?;
        Self::parse(&text, phones).wrap_err_with(|| format!("trace {}", path.display()))
    }

    fn parse(text: &str, phones: usize) -> eyre::Result<Self> {
        let mut events = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [seconds, a, b, state] = fields[..] else {
                bail!("line {}: expected seconds,a,b,up|down", number + 1);
            };
            let parse = |field: &str, what: &str| {
                field
                    .parse::<u64>()
                    .wrap_err_with(|| format!("line {}: {what} {field:?}", number + 1))
            };
            let (seconds, a, b) = (
                parse(seconds, "time")?,
                parse(a, "phone")?,
                parse(b, "phone")?,
            );
            let (a, b) = (usize::try_from(a)?, usize::try_from(b)?);
            if a >= phones || b >= phones || a == b {
                bail!(
                    "line {}: phones {a} and {b}: there are {phones} (0 to {})",
                    number + 1,
                    phones.saturating_sub(1)
                );
            }
            let up = match state {
                "up" => true,
                "down" => false,
                other => bail!("line {}: {other:?} is neither up nor down", number + 1),
            };
            events.push((seconds, (a.min(b), a.max(b)), up));
        }
        events.sort_by_key(|(seconds, _, _)| *seconds);
        Ok(Self {
            events,
            next: 0,
            links: BTreeSet::new(),
        })
    }

    /// The links up `seconds` after the start.
    pub(crate) fn links_at(&mut self, seconds: u64) -> BTreeSet<Pair> {
        while let Some((at, pair, up)) = self.events.get(self.next) {
            if *at > seconds {
                break;
            }
            if *up {
                self.links.insert(*pair);
            } else {
                self.links.remove(pair);
            }
            self.next += 1;
        }
        self.links.clone()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_grid_finds_exactly_the_pairs_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let positions: Vec<(f64, f64)> = (0..300).map(|_| point(500.0, &mut rng)).collect();
        let mut brute = BTreeSet::new();
        for a in 0..positions.len() {
            for b in a + 1..positions.len() {
                if (positions[a].0 - positions[b].0).hypot(positions[a].1 - positions[b].1) <= 40.0
                {
                    brute.insert((a, b));
                }
            }
        }
        assert!(
            brute.len() > 50,
            "the case has pairs to find: {}",
            brute.len()
        );
        assert_eq!(in_range(&positions, 40.0), brute);
    }

    #[test]
    fn walkers_stay_in_the_area_and_the_same_seed_walks_the_same_way() {
        let model = Waypoint {
            area: 200.0,
            range: 30.0,
            speed: (0.5, 1.5),
            max_pause: 60.0,
        };
        let walk = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut walkers = Walkers::new(model, 20, &mut rng);
            let mut seen = Vec::new();
            for _ in 0..500 {
                walkers.step(30.0, &mut rng);
                seen.push(walkers.links());
            }
            (walkers.positions(), seen)
        };
        let (positions, links) = walk(3);
        assert!(
            positions
                .iter()
                .all(|(x, y)| (0.0..=200.0).contains(x) && (0.0..=200.0).contains(y))
        );
        assert_eq!(walk(3).1, links);
        assert_ne!(walk(4).1, links);
        // Links come and go.
        assert!(links.windows(2).any(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn a_trace_brings_links_up_and_down_and_refuses_bad_lines() -> eyre::Result<()> {
        let mut trace = Trace::parse("# a trace\n0,0,1,up\n60,1,2,up\n120,1,0,down\n", 3)?;
        assert_eq!(trace.links_at(0), BTreeSet::from([(0, 1)]));
        assert_eq!(trace.links_at(90), BTreeSet::from([(0, 1), (1, 2)]));
        assert_eq!(trace.links_at(120), BTreeSet::from([(1, 2)]));
        for bad in [
            "0,0,3,up",
            "0,0,1,sideways",
            "x,0,1,up",
            "0,0,1",
            "0,1,1,up",
        ] {
            assert!(Trace::parse(bad, 3).is_err(), "{bad} was taken");
        }
        Ok(())
    }
}

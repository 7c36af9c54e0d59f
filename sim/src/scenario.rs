//! The day the simulation plays: a night shift handing phones back around 07:00, a day
//! shift taking them, the day shift returning them around 19:00 and the next night shift
//! taking them. Clinicians tap at carts or on phones; some return late, some to the wrong
//! cart, some not at all (overdue); some phones lose the network for hours; batteries
//! drain while carried and charge in the cart.

use lanyard_protocol::Timestamp;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// How a clinician brings the phone back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    /// Around the end of the shift, to the cart it came from (or its home cart).
    OnTime,
    /// One to three hours late.
    Late,
    /// On time, but to another cart.
    WrongCart,
    /// Not during the simulation: it becomes overdue.
    Never,
}

/// One clinician's day.
#[derive(Clone, Debug)]
pub struct Shift {
    /// Clinician index.
    pub user: usize,
    /// Their unit's cart.
    pub cart: usize,
    /// When they tap for a phone.
    pub tap_at: Timestamp,
    /// At the cart's reader (else on a docked phone).
    pub at_cart: bool,
    /// When they give it back, and how.
    pub return_at: Option<Timestamp>,
    /// How.
    pub how: Return,
    /// The phone they hold.
    pub phone: Option<usize>,
    /// Done tapping (granted or refused).
    pub tapped: bool,
}

/// The plan for a run of `span_ms` from `start` (06:00).
pub fn plan(
    rng: &mut fastrand::Rng,
    start: Timestamp,
    span_ms: i64,
    devices: usize,
    carts: usize,
) -> Vec<Shift> {
    let s = start.as_millis();
    let changes = [s + HOUR, s + 13 * HOUR, s + 25 * HOUR];
    let night = devices * 35 / 100;
    let day = devices / 2;
    let mut shifts = Vec::new();
    // The night shift is on when the run starts: its phones go out in the first minutes,
    // so that 07:00 has returns as well as taps.
    let cohorts = [
        (0, night, s, changes[0]),
        (night, day, changes[0], changes[1]),
        (0, night, changes[1], changes[2]),
    ];
    for (first_user, n, begins, ends) in cohorts {
        if begins >= s + span_ms {
            continue;
        }
        for k in 0..n {
            let user = first_user + k;
            let tap_at = if begins == s {
                s + rng.i64(0..15 * MIN)
            } else {
                begins + rng.i64(-10 * MIN..20 * MIN)
            };
            let roll = rng.u32(0..100);
            let how = match roll {
                0..80 => Return::OnTime,
                80..90 => Return::Late,
                90..95 => Return::WrongCart,
                _ => Return::Never,
            };
            let return_at = match how {
                Return::OnTime | Return::WrongCart => Some(ends + rng.i64(-20 * MIN..10 * MIN)),
                Return::Late => Some(ends + rng.i64(HOUR..3 * HOUR)),
                Return::Never => None,
            };
            shifts.push(Shift {
                user,
                cart: user % carts,
                tap_at: Timestamp(tap_at),
                at_cart: rng.u32(0..100) < 75,
                return_at: return_at.map(Timestamp),
                how,
                phone: None,
                tapped: false,
            });
        }
    }
    shifts
}

/// Clinicians the plan needs.
pub fn users(devices: usize) -> usize {
    devices * 35 / 100 + devices / 2
}

//! When to rotate: upstream's `nextRotationDeadline` (client-go
//! `util/certificate/certificate_manager.go`): `notBefore` plus a jittered
//! 70–90 % of the certificate's lifetime (`Jitter(total, 0.2) − 0.3·total`),
//! so nodes started together do not all rotate at once.
//!
//! Signers backdate `notBefore` (the Kubernetes signer by 5 minutes), so
//! for short-lived certificates the deadline comes sooner after issuance
//! than the percentage suggests, and may already have passed;
//! [`MIN_INTERVAL`] keeps rotations from following each other faster.

use std::time::{Duration, SystemTime};

/// The shortest time between two rotations of one certificate.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// The rotation deadline of a certificate valid from `not_before` to
/// `not_after`, for `jitter` in `[0, 1)` (a uniform random draw): at
/// `0.7 + 0.2·jitter` of the lifetime.
pub fn rotation_deadline(not_before: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or(Duration::ZERO);
    let fraction = 0.7 + 0.2 * jitter.clamp(0.0, 1.0);
    not_before + total.mul_f64(fraction)
}

/// A uniform draw in `[0, 1)` for [`rotation_deadline`].
pub fn jitter() -> f64 {
    rand::random::<f64>()
}

/// How long to wait from `now` until `deadline`, at least `floor` (what is
/// left of [`MIN_INTERVAL`] since the last rotation).
pub(crate) fn wait(now: SystemTime, deadline: SystemTime, floor: Duration) -> Duration {
    deadline.duration_since(now).unwrap_or(Duration::ZERO).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn deadline_is_between_70_and_90_percent() {
        let (nb, na) = (at(1_000_000), at(1_000_000) + 100 * HOUR);
        assert_eq!(rotation_deadline(nb, na, 0.0), nb + 70 * HOUR);
        assert_eq!(rotation_deadline(nb, na, 0.5), nb + 80 * HOUR);
        let almost = rotation_deadline(nb, na, 0.999_999);
        assert!(almost < nb + 90 * HOUR && almost > nb + 89 * HOUR);
        for _ in 0..1000 {
            let d = rotation_deadline(nb, na, jitter());
            assert!(d >= nb + 70 * HOUR && d < nb + 90 * HOUR, "{d:?}");
        }
        // Out-of-range draws are clamped; a backwards validity rotates at once.
        assert_eq!(rotation_deadline(nb, na, 7.0), nb + 90 * HOUR);
        assert_eq!(rotation_deadline(na, nb, 0.5), na);
    }

    #[test]
    fn backdated_short_lived_certificates() {
        // The signer's 5 minute backdate on a 150 s certificate: lifetime
        // 450 s, so the deadline is 15..105 s after issuance.
        let issued = at(2_000_000);
        let (nb, na) = (issued - Duration::from_secs(300), issued + Duration::from_secs(150));
        assert_eq!(rotation_deadline(nb, na, 0.0), issued + Duration::from_secs(15));
        assert_eq!(rotation_deadline(nb, na, 1.0), issued + Duration::from_secs(105));
    }

    #[test]
    fn waits_are_floored() {
        let now = at(5_000);
        assert_eq!(wait(now, at(5_060), Duration::ZERO), Duration::from_secs(60));
        assert_eq!(wait(now, at(4_000), Duration::ZERO), Duration::ZERO, "overdue: now");
        assert_eq!(wait(now, at(4_000), MIN_INTERVAL), MIN_INTERVAL);
        assert_eq!(wait(now, at(5_060), MIN_INTERVAL), Duration::from_secs(60));
    }
}

//! Zipf-distributed integers by rejection-inversion (Hörmann & Derflinger 1996), as Apache Commons RNG does.
//!
//! O(1) set-up and O(1) expected time per sample for any key-space size, so a
//! 100M-key zipfian workload needs no table. Rank 1 is the most frequent.

use crate::rng::Rng;

/// A sampler of ranks in `1..=n` with P(k) proportional to k^-theta.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    theta: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// A sampler over `1..=n` with exponent `theta` (>= 0; 0 is uniform, 0.99 is YCSB's default).
    pub fn new(n: u64, theta: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("zipf: the key space must not be empty".into());
        }
        if !theta.is_finite() || theta < 0.0 {
            return Err(format!(
                "zipf: theta must be a finite number >= 0, got {theta}"
            ));
        }
        let mut z = Zipf {
            n: n as f64,
            theta,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        Ok(z)
    }

    /// The exponent.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// One rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let mut k = (x + 0.5) as i64 as f64;
            if k < 1.0 {
                k = 1.0;
            } else if k > self.n {
                k = self.n;
            }
            // Accept at once when k is close to x (most draws), else compare with the exact mass.
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// h(x) = x^-theta.
    fn h(&self, x: f64) -> f64 {
        (-self.theta * x.ln()).exp()
    }

    /// H(x) = integral of h, written to stay exact as theta -> 1.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.theta) * log_x) * log_x
    }

    /// H^-1(x).
    fn h_integral_inverse(&self, x: f64) -> f64 {
        let mut t = x * (1.0 - self.theta);
        if t < -1.0 {
            // Rounding can push t just below -1, where log1p is undefined.
            t = -1.0;
        }
        (helper1(t) * x).exp()
    }
}

/// log1p(x)/x, with its series near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// expm1(x)/x, with its series near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample frequencies of the top ranks match k^-theta / H(n, theta) within a few percent.
    fn check(n: u64, theta: f64) {
        let z = Zipf::new(n, theta).unwrap();
        let mut rng = Rng::new(42);
        let draws = 1_000_000u64;
        let mut counts = vec![0u64; n as usize + 1];
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k), "rank {k} out of 1..={n}");
            counts[k as usize] += 1;
        }
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-theta)).sum();
        for k in [1u64, 2, 3, 5, 10, 50] {
            let expect = (k as f64).powf(-theta) / norm * draws as f64;
            let got = counts[k as usize] as f64;
            let tol = 5.0 * expect.sqrt() + 0.01 * expect;
            assert!(
                (got - expect).abs() < tol,
                "n={n} theta={theta} rank {k}: got {got}, expected {expect:.0} ± {tol:.0}"
            );
        }
        // Frequencies fall with rank (over coarse buckets, so noise does not flip them).
        let head: u64 = counts[1..=10].iter().sum();
        let tail: u64 = counts[(n as usize - 9)..=n as usize].iter().sum();
        if theta > 0.1 {
            assert!(head > tail * 2, "head {head} tail {tail}");
        }
    }

    #[test]
    fn zipf_matches_the_power_law() {
        check(1000, 0.99);
        check(1000, 1.0);
        check(1000, 1.5);
        check(100, 0.5);
    }

    #[test]
    fn theta_zero_is_uniform() {
        let z = Zipf::new(10, 0.0).unwrap();
        let mut rng = Rng::new(7);
        let mut counts = [0u64; 11];
        for _ in 0..200_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        for &c in &counts[1..] {
            assert!((19_000..21_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn tiny_and_huge_key_spaces() {
        let mut rng = Rng::new(1);
        let one = Zipf::new(1, 0.99).unwrap();
        assert!((0..1000).all(|_| one.sample(&mut rng) == 1));
        let big = Zipf::new(1 << 40, 0.99).unwrap();
        for _ in 0..10_000 {
            let k = big.sample(&mut rng);
            assert!((1..=1u64 << 40).contains(&k));
        }
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, -1.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }
}

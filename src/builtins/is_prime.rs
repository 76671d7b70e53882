//! `is_prime(n)`: the trial division of the Python documentation's example.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use crate::schema::describe;
use futuretop_engine::Exception;

/// `is_prime(n)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsPrime {
    /// The number.
    pub n: u64,
}

impl Callable for IsPrime {
    const NAME: &'static str = "is_prime";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        let (v, path) = p.required("n")?;
        if let Some(n) = v.as_u64() {
            Some(Self { n })
        } else {
            p.error(&path, format!("expected a whole number 0 or more for n, found {}", describe(v)));
            None
        }
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        is_prime(self.n).map(Value::Bool)
    }
}

/// The seed's `is_prime`: trial division by odd numbers up to `floor(sqrt(n))`.
fn is_prime(n: u64) -> Result<bool, Exception> {
    if n < 2 {
        return Ok(false);
    }
    if n == 2 {
        return Ok(true);
    }
    if n.is_multiple_of(2) {
        return Ok(false);
    }
    let sqrt_n = n.isqrt();
    let mut i = 3;
    while i <= sqrt_n {
        if n.is_multiple_of(i) {
            return Ok(false);
        }
        if i.is_multiple_of(65_537) {
            futuretop_engine::checkpoint()?;
        }
        i += 2;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_prime_matches_the_seed() {
        let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n).unwrap()).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(112_272_535_095_293).unwrap());
        assert!(!is_prime(112_272_535_095_295).unwrap());
    }
}

//! `pow(base, exp)`: `base ** exp`, exact (a string of digits beyond 64 bits).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use futuretop_engine::Exception;

/// The largest exponent `pow` accepts (its result has to fit on a screen and in a log).
const MAX_POW_EXP: i64 = 100_000;
/// The most digits a `pow` result may have (ten times the seed's 323 ** 1235, and then some).
const MAX_POW_DIGITS: f64 = 100_000.0;

/// `pow(base, exp)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pow {
    /// The base.
    pub base: i64,
    /// The exponent.
    pub exp: u32,
}

impl Callable for Pow {
    const NAME: &'static str = "pow";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        let base = p.required_int("base", i64::MIN, i64::MAX);
        let exp = p.required_int("exp", 0, MAX_POW_EXP);
        let (base, exp) = (base?, exp?);
        // The result's digits: exp * log10(|base|). Computing it costs about exp times
        // its length, and the worker cannot be stopped meanwhile. (A result that fits in
        // 64 bits, nearly every call, is not looked at further: a map of 100,000 items
        // spent a tenth of its validation in the logarithm.)
        let fits = u32::try_from(exp).is_ok_and(|e| base.checked_pow(e).is_some());
        let digits = if fits { 0.0 } else { exp as f64 * (base.unsigned_abs().max(1) as f64).log10() };
        if digits > MAX_POW_DIGITS {
            let at = p.path_of("exp");
            p.error(
                &at,
                format!(
                    "{base} ** {exp} would have about {digits:.0} digits; expected a result of at most \
                     {MAX_POW_DIGITS} digits"
                ),
            );
            return None;
        }
        u32::try_from(exp).ok().map(|exp| Self { base, exp })
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        Ok(pow(self.base, self.exp))
    }
}

/// `base ** exp` exactly: a JSON number when it fits in 64 bits, else a string of digits.
fn pow(base: i64, exp: u32) -> Value {
    // Base-10^9 limbs, least significant first.
    const LIMB: u128 = 1_000_000_000;
    if let Some(v) = base.checked_pow(exp) {
        return Value::from(v);
    }
    let b = u128::from(base.unsigned_abs());
    let mut limbs: Vec<u128> = vec![1];
    for _ in 0..exp {
        let mut carry = 0u128;
        for l in &mut limbs {
            let v = *l * b + carry;
            *l = v % LIMB;
            carry = v / LIMB;
        }
        while carry > 0 {
            limbs.push(carry % LIMB);
            carry /= LIMB;
        }
    }
    let mut s = String::new();
    if base < 0 && exp % 2 == 1 {
        s.push('-');
    }
    let mut it = limbs.iter().rev();
    if let Some(top) = it.next() {
        s.push_str(&top.to_string());
    }
    for l in it {
        s.push_str(&format!("{l:09}"));
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_is_exact_beyond_64_bits() {
        assert_eq!(pow(2, 10), Value::from(1024));
        assert_eq!(pow(2, 64), Value::String("18446744073709551616".into()));
        assert_eq!(pow(-3, 41), Value::String("-36472996377170786403".into()));
        // The seed's example: Python says len(str(323 ** 1235)) == 3099.
        let Value::String(big) = pow(323, 1235) else { panic!("expected digits") };
        assert_eq!(big.len(), 3099);
    }
}

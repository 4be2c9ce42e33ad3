//! A request's latency as the access log writes it: milliseconds with two
//! decimals (`"1.50"`), formatted without the float formatting machinery,
//! which costs as much as the rest of the line's fields together.

use std::time::Duration;

/// Milliseconds with two decimals, rounded half up, held on the stack.
#[derive(Clone, Copy)]
pub struct LatencyText {
    /// Digits are written from the end; `start` is where they begin.
    buf: [u8; 32],
    start: usize,
}

impl std::fmt::Debug for LatencyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LatencyText {
    /// The text of `latency`.
    pub fn new(latency: Duration) -> Self {
        let hundredths = (latency.as_micros() + 5) / 10;
        let mut text = LatencyText {
            buf: [0; 32],
            start: 32,
        };
        text.push_digit(hundredths % 10);
        text.push_digit(hundredths / 10 % 10);
        text.push(b'.');
        let mut whole = hundredths / 100;
        loop {
            text.push_digit(whole % 10);
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        self.start -= 1;
        self.buf[self.start] = byte;
    }

    fn push_digit(&mut self, digit: u128) {
        // A digit is below 10, so the cast cannot truncate.
        self.push(b'0' + digit as u8);
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits and a dot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_float_formatted_with_two_decimals() {
        let mut micros: Vec<u64> = (0..3000).collect();
        micros.extend([
            9_994,
            9_996,
            99_999,
            1_234_567,
            86_400_000_000,
            u64::MAX / 1000,
        ]);
        for m in micros {
            // Exact halves round differently in binary floating point.
            if m % 10 == 5 {
                continue;
            }
            let ours = LatencyText::new(Duration::from_micros(m));
            let float = format!("{:.2}", m as f64 / 1000.0);
            assert_eq!(ours.as_str(), float, "{m} us");
        }
    }

    #[test]
    fn halves_round_up() {
        assert_eq!(LatencyText::new(Duration::from_micros(5)).as_str(), "0.01");
        assert_eq!(
            LatencyText::new(Duration::from_micros(1_995)).as_str(),
            "2.00"
        );
        assert_eq!(
            LatencyText::new(Duration::from_nanos(4_999)).as_str(),
            "0.00"
        );
    }

    #[test]
    fn the_longest_duration_fits() {
        let hundredths = (Duration::MAX.as_micros() + 5) / 10;
        let expected = format!("{}.{:02}", hundredths / 100, hundredths % 100);
        assert_eq!(LatencyText::new(Duration::MAX).as_str(), expected);
    }
}

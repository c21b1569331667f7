//! Verification codes: `code_length` random digits, shown to the member in the group.
//!
//! A code is not a secret (the whole group sees the welcome message): it proves that someone
//! read the message and acted, as the seed module's UUID did, and digits are easier to type on
//! a phone. An answer may be any text: the codes it offers are its runs of exactly
//! `code_length` digits, so pasting the whole welcome message works. A message offering more
//! than [`MAX_CANDIDATES`] is a guess at many codes at once and counts as one wrong answer.

/// Most codes one message may offer.
pub const MAX_CANDIDATES: usize = 3;

/// A new code of `length` digits (no leading zero, so it reads as a number).
pub fn generate(length: usize) -> String {
    let mut code = String::with_capacity(length);
    code.push(char::from(b'1' + fastrand::u8(0..9)));
    for _ in 1..length {
        code.push(char::from(b'0' + fastrand::u8(0..10)));
    }
    code
}

/// What a message offers as answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// No run of `length` digits: not an answer at all.
    None,
    /// These codes.
    Codes(Vec<String>),
    /// Too many codes at once: a wrong answer.
    TooMany,
}

/// The runs of exactly `length` ASCII digits in `text`.
pub fn answer(text: &str, length: usize) -> Answer {
    let mut codes: Vec<String> = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run.push(c);
            continue;
        }
        if run.len() == length && !codes.contains(&run) {
            codes.push(run.clone());
        }
        run.clear();
    }
    match codes.len() {
        0 => Answer::None,
        n if n > MAX_CANDIDATES => Answer::TooMany,
        _ => Answer::Codes(codes),
    }
}

/// Whether `text` offers anything that looks like an answer (what the receiver forwards).
pub fn looks_like_answer(text: &str, length: usize) -> bool {
    answer(text, length) != Answer::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_length_and_no_leading_zero() {
        for _ in 0..200 {
            let c = generate(6);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0'));
        }
    }

    #[test]
    fn answers_are_runs_of_exactly_the_length() {
        assert_eq!(
            answer("my code: 123456!", 6),
            Answer::Codes(vec!["123456".into()])
        );
        assert_eq!(answer("1234567 and 12345", 6), Answer::None);
        assert_eq!(
            answer("(10001) 欢迎…验证码是：654321", 6),
            Answer::Codes(vec!["654321".into()])
        );
        assert_eq!(answer("111111 222222 333333 444444", 6), Answer::TooMany);
        assert_eq!(
            answer("111111 111111", 6),
            Answer::Codes(vec!["111111".into()])
        );
        assert!(!looks_like_answer("hello", 6));
    }
}

//! Phone numbers as gatehouse keeps and shows them: E.164 form, masked display, and
//! the four digits a flash call carries. Used by the configuration checks, the phone
//! factor and the telephony clients alike.

/// A number in E.164 form (`+380501234567`), if `text` is a valid phone number.
pub fn normalise(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if !cleaned.starts_with('+') {
        return None;
    }
    let number = phonenumber::parse(None, &cleaned).ok()?;
    phonenumber::is_valid(&number)
        .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
}

/// `+380 50 *** **67`-style display of a number.
pub fn mask(number: &str) -> String {
    let keep = number.len().saturating_sub(2);
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i > 3 && i < keep { '*' } else { c })
        .collect()
}

/// The four digits the user types after a flash call.
pub fn last_four(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(|c| c.is_ascii_digit()).collect();
    digits[digits.len().saturating_sub(4)..].iter().collect()
}

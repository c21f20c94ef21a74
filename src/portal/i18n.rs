//! The portal's texts in English and Ukrainian, chosen by `Accept-Language`.

/// Every text a page shows.
#[derive(Debug)]
pub struct Texts {
    pub lang: &'static str,
    pub sign_in_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub remember_me: &'static str,
    pub sign_in: &'static str,
    pub bad_credentials: &'static str,
    pub missing_fields: &'static str,
    /// `{}` is replaced by the minutes left.
    pub banned: &'static str,
    pub signed_in_title: &'static str,
    pub signed_in_as: &'static str,
    pub continue_label: &'static str,
    pub sign_out: &'static str,
    pub signed_out: &'static str,
    pub denied_title: &'static str,
    pub denied: &'static str,
    pub not_found_title: &'static str,
    pub not_found: &'static str,
    pub error_title: &'static str,
    pub csrf_failed: &'static str,
    pub back_to_login: &'static str,
}

pub static EN: Texts = Texts {
    lang: "en",
    sign_in_title: "Sign in",
    username: "Username",
    password: "Password",
    remember_me: "Keep me signed in on this device",
    sign_in: "Sign in",
    bad_credentials: "Incorrect username or password.",
    missing_fields: "Enter your username and password.",
    banned: "Too many failed attempts. Sign-in is blocked for {} more minute(s); try again later.",
    signed_in_title: "You are signed in",
    signed_in_as: "Signed in as",
    continue_label: "Continue",
    sign_out: "Sign out",
    signed_out: "You have signed out.",
    denied_title: "Access denied",
    denied: "You are not allowed to open this page.",
    not_found_title: "Not found",
    not_found: "There is nothing at this address.",
    error_title: "Something went wrong",
    csrf_failed: "The form expired or was not sent from this site. Please try again.",
    back_to_login: "Back to sign-in",
};

pub static UK: Texts = Texts {
    lang: "uk",
    sign_in_title: "Вхід",
    username: "Ім'я користувача",
    password: "Пароль",
    remember_me: "Не виходити на цьому пристрої",
    sign_in: "Увійти",
    bad_credentials: "Неправильне ім'я користувача або пароль.",
    missing_fields: "Введіть ім'я користувача та пароль.",
    banned: "Забагато невдалих спроб. Вхід заблоковано ще на {} хв; спробуйте пізніше.",
    signed_in_title: "Ви увійшли",
    signed_in_as: "Ви увійшли як",
    continue_label: "Продовжити",
    sign_out: "Вийти",
    signed_out: "Ви вийшли.",
    denied_title: "Доступ заборонено",
    denied: "Вам не дозволено відкривати цю сторінку.",
    not_found_title: "Не знайдено",
    not_found: "За цією адресою нічого немає.",
    error_title: "Щось пішло не так",
    csrf_failed: "Форма застаріла або надіслана не з цього сайту. Спробуйте ще раз.",
    back_to_login: "Повернутися до входу",
};

/// Picks the first supported language in `Accept-Language` order of preference.
pub fn texts_for(accept_language: Option<&str>) -> &'static Texts {
    let Some(header) = accept_language else {
        return &EN;
    };
    let mut best: Option<(f32, &'static Texts)> = None;
    for part in header.split(',') {
        let mut pieces = part.trim().split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let texts = match primary {
            "uk" => &UK,
            "en" => &EN,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, texts));
        }
    }
    best.map(|(_, t)| t).unwrap_or(&EN)
}

/// The ban message with the minutes filled in.
pub fn banned_message(t: &Texts, seconds_left: u64) -> String {
    t.banned
        .replace("{}", &seconds_left.div_ceil(60).max(1).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ukrainian_is_chosen_by_accept_language() {
        assert_eq!(texts_for(Some("uk-UA,uk;q=0.9,en;q=0.8")).lang, "uk");
        assert_eq!(texts_for(Some("en-US,en;q=0.9,uk;q=0.5")).lang, "en");
        assert_eq!(texts_for(Some("de-DE, uk;q=0.3")).lang, "uk");
        assert_eq!(texts_for(Some("fr")).lang, "en");
        assert_eq!(texts_for(None).lang, "en");
    }

    #[test]
    fn ban_message_rounds_minutes_up() {
        assert!(banned_message(&EN, 61).contains("2 more minute"));
        assert!(banned_message(&EN, 1).contains("1 more minute"));
    }
}

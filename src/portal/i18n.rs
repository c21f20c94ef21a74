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
    pub second_step_title: &'static str,
    pub second_step_intro: &'static str,
    pub choose_method: &'static str,
    pub method_totp: &'static str,
    pub method_backup: &'static str,
    pub totp_code_label: &'static str,
    pub backup_code_label: &'static str,
    pub verify: &'static str,
    pub cancel_sign_out: &'static str,
    pub wrong_code: &'static str,
    pub replayed_code: &'static str,
    pub clock_ahead: &'static str,
    pub clock_behind: &'static str,
    pub clock_fix: &'static str,
    pub settings_title: &'static str,
    pub settings_intro: &'static str,
    pub status_on: &'static str,
    pub status_off: &'static str,
    pub enable: &'static str,
    pub disable: &'static str,
    pub totp_intro: &'static str,
    pub totp_disable_needs_password: &'static str,
    pub totp_enroll_title: &'static str,
    pub totp_scan: &'static str,
    pub totp_manual: &'static str,
    pub totp_several_devices: &'static str,
    pub totp_confirm_label: &'static str,
    pub totp_confirm: &'static str,
    pub cancel: &'static str,
    pub backup_title: &'static str,
    pub backup_intro: &'static str,
    pub backup_left: &'static str,
    pub backup_none_yet: &'static str,
    pub backup_regenerate: &'static str,
    pub backup_regenerate_confirm: &'static str,
    pub backup_show_title: &'static str,
    pub backup_show_intro: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub download: &'static str,
    pub saved_continue: &'static str,
    pub sessions_title: &'static str,
    pub sessions_device: &'static str,
    pub sessions_ip: &'static str,
    pub sessions_created: &'static str,
    pub sessions_last_seen: &'static str,
    pub this_session: &'static str,
    pub end_session: &'static str,
    pub end_others: &'static str,
    pub end_others_confirm: &'static str,
    pub password_title: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub change_password: &'static str,
    pub password_mismatch: &'static str,
    pub password_too_short: &'static str,
    pub password_common: &'static str,
    pub password_wrong: &'static str,
    pub done_password: &'static str,
    pub done_totp_on: &'static str,
    pub done_totp_off: &'static str,
    pub done_2fa_off: &'static str,
    pub done_session_ended: &'static str,
    pub done_others_ended: &'static str,
    pub two_factor_needed: &'static str,
    pub confirm_title: &'static str,
    pub confirm_intro: &'static str,
    pub confirm: &'static str,
    pub back_to_settings: &'static str,
    pub settings_link: &'static str,
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
    second_step_title: "Two-step verification",
    second_step_intro: "Your password was right. Now confirm it is you with one of your methods.",
    choose_method: "Verification methods",
    method_totp: "Authenticator app",
    method_backup: "Backup code",
    totp_code_label: "6-digit code from your authenticator app",
    backup_code_label: "One of your backup codes",
    verify: "Verify",
    cancel_sign_out: "Cancel and sign out",
    wrong_code: "That code is not right. Check it and try again.",
    replayed_code: "This code was already used. Wait for the next code in your app.",
    clock_ahead: "The code would be right if your device's clock were correct: it is about {} minute(s) ahead.",
    clock_behind: "The code would be right if your device's clock were correct: it is about {} minute(s) behind.",
    clock_fix: "Turn on automatic date and time (network time) in your phone's settings, or use your app's time correction, then enter a new code.",
    settings_title: "Security",
    settings_intro: "Manage how you sign in.",
    status_on: "On",
    status_off: "Off",
    enable: "Enable",
    disable: "Disable",
    totp_intro: "Use an app such as Google Authenticator, Aegis, andOTP or FreeOTP to get a new 6-digit code every 30 seconds.",
    totp_disable_needs_password: "It is your only second factor: enter your password to turn two-step verification off.",
    totp_enroll_title: "Set up your authenticator app",
    totp_scan: "Scan this QR code with your authenticator app.",
    totp_manual: "Or enter this key by hand:",
    totp_several_devices: "To use several devices, scan the same QR code (or enter the same key) on each of them now, before you confirm.",
    totp_confirm_label: "Enter the 6-digit code the app shows",
    totp_confirm: "Turn on",
    cancel: "Cancel",
    backup_title: "Backup codes",
    backup_intro: "Each code works once, when you cannot use your other methods.",
    backup_left: "Codes left:",
    backup_none_yet: "Backup codes are made when you turn on your first second factor.",
    backup_regenerate: "Generate new codes",
    backup_regenerate_confirm: "Your old codes will stop working. Continue?",
    backup_show_title: "Save your backup codes",
    backup_show_intro: "These codes are shown only once. Keep them somewhere safe: each one lets you sign in once if you lose your phone.",
    copy: "Copy",
    copied: "Copied",
    download: "Download",
    saved_continue: "I have saved them",
    sessions_title: "Sessions",
    sessions_device: "Device",
    sessions_ip: "IP address",
    sessions_created: "Signed in",
    sessions_last_seen: "Last seen",
    this_session: "This session",
    end_session: "End",
    end_others: "End all other sessions",
    end_others_confirm: "Sign out everywhere else?",
    password_title: "Password",
    current_password: "Current password",
    new_password: "New password",
    repeat_password: "Repeat the new password",
    change_password: "Change password",
    password_mismatch: "The new passwords do not match.",
    password_too_short: "The new password must be at least {} characters long.",
    password_common: "This password is too common. Choose one that is harder to guess.",
    password_wrong: "Your current password is not right.",
    done_password: "Your password was changed. Your other sessions were ended.",
    done_totp_on: "Your authenticator app is on.",
    done_totp_off: "Your authenticator app is off.",
    done_2fa_off: "Two-step verification is now off for your account.",
    done_session_ended: "The session was ended.",
    done_others_ended: "All your other sessions were ended.",
    two_factor_needed: "This page needs two-step verification. Turn on a second factor below to continue.",
    confirm_title: "Confirm your password",
    confirm_intro: "For your security, enter your password again to make this change.",
    confirm: "Confirm",
    back_to_settings: "Back to security settings",
    settings_link: "Security settings",
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
    second_step_title: "Двоетапна перевірка",
    second_step_intro: "Пароль правильний. Тепер підтвердьте, що це ви, одним зі своїх способів.",
    choose_method: "Способи перевірки",
    method_totp: "Застосунок-автентифікатор",
    method_backup: "Резервний код",
    totp_code_label: "6-значний код із застосунку-автентифікатора",
    backup_code_label: "Один із ваших резервних кодів",
    verify: "Підтвердити",
    cancel_sign_out: "Скасувати й вийти",
    wrong_code: "Код неправильний. Перевірте його та спробуйте ще раз.",
    replayed_code: "Цей код уже використано. Дочекайтеся наступного коду в застосунку.",
    clock_ahead: "Код був би правильним, якби годинник вашого пристрою йшов точно: він поспішає приблизно на {} хв.",
    clock_behind: "Код був би правильним, якби годинник вашого пристрою йшов точно: він відстає приблизно на {} хв.",
    clock_fix: "Увімкніть автоматичні дату й час (час мережі) у налаштуваннях телефону або скористайтеся корекцією часу в застосунку, потім введіть новий код.",
    settings_title: "Безпека",
    settings_intro: "Керуйте тим, як ви входите.",
    status_on: "Увімкнено",
    status_off: "Вимкнено",
    enable: "Увімкнути",
    disable: "Вимкнути",
    totp_intro: "Використовуйте застосунок, як-от Google Authenticator, Aegis, andOTP чи FreeOTP, який кожні 30 секунд показує новий 6-значний код.",
    totp_disable_needs_password: "Це ваш єдиний другий фактор: введіть пароль, щоб вимкнути двоетапну перевірку.",
    totp_enroll_title: "Налаштуйте застосунок-автентифікатор",
    totp_scan: "Відскануйте цей QR-код застосунком-автентифікатором.",
    totp_manual: "Або введіть цей ключ вручну:",
    totp_several_devices: "Щоб користуватися кількома пристроями, зараз відскануйте той самий QR-код (або введіть той самий ключ) на кожному з них, перш ніж підтвердити.",
    totp_confirm_label: "Введіть 6-значний код, який показує застосунок",
    totp_confirm: "Увімкнути",
    cancel: "Скасувати",
    backup_title: "Резервні коди",
    backup_intro: "Кожен код діє один раз — коли ви не можете скористатися іншими способами.",
    backup_left: "Залишилося кодів:",
    backup_none_yet: "Резервні коди створюються, коли ви вмикаєте перший другий фактор.",
    backup_regenerate: "Створити нові коди",
    backup_regenerate_confirm: "Старі коди перестануть діяти. Продовжити?",
    backup_show_title: "Збережіть резервні коди",
    backup_show_intro: "Ці коди показано лише один раз. Зберігайте їх у надійному місці: кожен дає змогу один раз увійти, якщо ви втратите телефон.",
    copy: "Копіювати",
    copied: "Скопійовано",
    download: "Завантажити",
    saved_continue: "Я їх зберіг(ла)",
    sessions_title: "Сеанси",
    sessions_device: "Пристрій",
    sessions_ip: "IP-адреса",
    sessions_created: "Вхід",
    sessions_last_seen: "Остання активність",
    this_session: "Цей сеанс",
    end_session: "Завершити",
    end_others: "Завершити всі інші сеанси",
    end_others_confirm: "Вийти на всіх інших пристроях?",
    password_title: "Пароль",
    current_password: "Поточний пароль",
    new_password: "Новий пароль",
    repeat_password: "Повторіть новий пароль",
    change_password: "Змінити пароль",
    password_mismatch: "Нові паролі не збігаються.",
    password_too_short: "Новий пароль має містити щонайменше {} символів.",
    password_common: "Цей пароль надто поширений. Виберіть такий, який важче вгадати.",
    password_wrong: "Поточний пароль неправильний.",
    done_password: "Пароль змінено. Інші ваші сеанси завершено.",
    done_totp_on: "Застосунок-автентифікатор увімкнено.",
    done_totp_off: "Застосунок-автентифікатор вимкнено.",
    done_2fa_off: "Двоетапну перевірку для вашого облікового запису вимкнено.",
    done_session_ended: "Сеанс завершено.",
    done_others_ended: "Усі ваші інші сеанси завершено.",
    two_factor_needed: "Ця сторінка потребує двоетапної перевірки. Увімкніть другий фактор нижче, щоб продовжити.",
    confirm_title: "Підтвердьте пароль",
    confirm_intro: "Задля безпеки введіть пароль ще раз, щоб внести цю зміну.",
    confirm: "Підтвердити",
    back_to_settings: "Назад до налаштувань безпеки",
    settings_link: "Налаштування безпеки",
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

/// A text with its `{}` filled in.
pub fn fill(text: &str, value: impl std::fmt::Display) -> String {
    text.replace("{}", &value.to_string())
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

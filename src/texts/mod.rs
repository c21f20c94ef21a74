//! Every text gatehouse shows (portal pages, mails, Telegram messages, the robot's call
//! script), in each language of `locales/` ([`fluent`]), chosen by the user's choice on
//! the portal or `Accept-Language`, and the formatting of values inside them.
//! Below the portal and the notifiers, which both use it.

pub mod brand;
pub mod fluent;
pub mod format;
pub mod passkeys;
pub mod telegram;

use std::sync::LazyLock;

use fluent::{fluent_texts, index_of, LANGUAGES};

pub use brand::brand;
pub use format::{describe_device, format_time, moment, Moment};

fluent_texts! {
    /// Every text a page shows.
    pub struct Texts in "" {
        pub telegram: &'static crate::texts::telegram::TelegramTexts = crate::texts::telegram::for_lang,
        pub passkeys: &'static crate::texts::passkeys::PasskeyTexts = crate::texts::passkeys::for_lang,
        ;
        /// The language switcher's label.
        language,
        /// The robot's call script: the voice's language (a BCP 47 tag the telephony
        /// provider knows), what it says before the code, and before saying it again.
        call_voice_language,
        call_intro,
        call_again,
        sign_in_title,
        username,
        password,
        remember_me,
        sign_in,
        bad_credentials,
        missing_fields,
        signed_in_title,
        signed_in_as,
        continue_label,
        sign_out,
        sign_out_title,
        stay_signed_in,
        switch_account,
        support_lost,
        summary_on,
        summary_off,
        summary_recommend_passkey,
        summary_recommend_app,
        session_expired,
        reload_form,
        back_to_panel,
        support_link,
        back_to_site,
        signed_out,
        denied_title,
        denied,
        not_found_title,
        not_found,
        bad_gateway_title,
        bad_gateway,
        gateway_timeout_title,
        gateway_timeout,
        error_title,
        csrf_failed,
        back_to_login,
        second_step_title,
        second_step_intro,
        choose_method,
        method_totp,
        method_backup,
        totp_code_label,
        backup_code_label,
        verify,
        cancel_sign_out,
        wrong_code,
        replayed_code,
        clock_fix,
        settings_title,
        settings_intro,
        status_on,
        status_off,
        enable,
        disable,
        totp_intro,
        totp_disable_needs_password,
        totp_enroll_title,
        totp_scan,
        totp_qr_alt,
        totp_qr_tap,
        codes_selected,
        totp_manual,
        totp_several_devices,
        totp_confirm_label,
        totp_confirm,
        cancel,
        backup_title,
        backup_used_title,
        backup_used_left,
        backup_used_one,
        backup_used_none,
        backup_used_generate,
        backup_intro,
        backup_left,
        backup_none_yet,
        backup_regenerate,
        backup_regenerate_confirm,
        backup_show_title,
        backup_show_intro,
        copy,
        copied,
        download,
        saved_continue,
        sessions_title,
        sessions_device,
        sessions_ip,
        sessions_created,
        sessions_last_seen,
        sessions_signed_in_with,
        this_session,
        this_device,
        end_session,
        end_others,
        end_others_confirm,
        password_title,
        current_password,
        new_password,
        repeat_password,
        change_password,
        password_mismatch,
        password_common,
        password_wrong,
        done_password,
        done_totp_on,
        done_totp_off,
        done_2fa_off,
        done_session_ended,
        done_others_ended,
        two_factor_needed,
        confirm_title,
        confirm_intro,
        identity_title,
        identity_intro,
        identity_send,
        identity_sent,
        identity_code,
        identity_wrong,
        identity_wait,
        identity_done,
        email_identity_subject,
        confirm,
        back_to_settings,
        settings_link,
        email_greeting,
        email_footer,
        email_open_link,
        email_code_subject,
        email_code_not_you,
        email_confirm_subject,
        email_reset_subject,
        email_reset_2fa_line,
        email_reset_ignore,
        notice_subject,
        notice_2fa_on,
        notice_2fa_off,
        notice_backup,
        notice_reset_used,
        notice_not_you,
        method_email,
        email_code_label,
        email_send_code,
        email_send_again,
        email_sent_to,
        email_not_sent,
        email_hourly_cap,
        email_code_dead,
        email_intro,
        email_no_address,
        email_confirm_title,
        email_confirm_label,
        done_email_on,
        done_email_off,
        forgot_link,
        forgot_title,
        forgot_intro,
        forgot_field,
        forgot_send,
        reset_title,
        reset_2fa_warning,
        reset_save,
        reset_invalid,
        reset_done,
        reset_done_2fa,
        address_title,
        address_current,
        address_none,
        address_new,
        address_change,
        address_invalid,
        address_code_title,
        done_address,
        notice_address_changed,
        phone_use_link,
        phone_title,
        phone_warning,
        phone_consent,
        phone_pick,
        phone_call,
        phone_call_again,
        phone_consent_needed,
        phone_sent_voice,
        phone_sent_flash,
        phone_sent_sms,
        phone_code_voice,
        phone_code_flash,
        phone_code_sms,
        phone_limited,
        phone_failed,
        phone_done_title,
        phone_done,
        phone_setup_again,
        phone_sms_text,
        notice_phone_login,
        numbers_title,
        numbers_intro,
        number_add_label,
        number_add,
        number_unconfirmed,
        number_remove,
        number_invalid,
        number_taken,
        number_code_title,
        number_sms_text,
        number_code_sent,
        done_number_added,
        done_number_removed,
        new_device_subject,
        new_device_line,
        new_device_not_you,
        new_device_open_settings,
        trusted_title,
        trusted_intro,
        trusted_none,
        trusted_until,
        trusted_forget,
        trusted_forget_all,
        trusted_forget_all_confirm,
        done_trusted_forgotten,
        done_trusted_all_forgotten,
        method_trusted_device,
        activity_title,
        activity_none,
        activity_login,
        activity_login_failed,
        activity_banned,
        activity_second_factor_failed,
        activity_telegram_not_me,
        activity_factor_on,
        activity_factor_off,
        activity_two_factor_reset,
        activity_password_changed,
        activity_password_reset,
        activity_sessions_ended,
        activity_backup_codes,
        activity_device_trusted,
        activity_devices_forgotten,
        activity_new_device_alert,
    }
    counted {
        /// `{}` is replaced by the minutes left.
        banned,
        clock_ahead,
        clock_behind,
        password_too_short,
        email_identity_line,
        email_code_line,
        email_confirm_line,
        email_reset_line,
        email_cooldown,
        forgot_sent,
        trust_device,
        activity_intro,
    }
}

static ALL: LazyLock<Vec<Texts>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|(tag, _, _)| Texts::load(tag))
        .collect()
});

/// The texts of `lang` (the fallback language's for an unknown tag).
pub fn for_lang(lang: &str) -> &'static Texts {
    &ALL[index_of(lang)]
}

/// The portal's languages for the switcher: (tag, name in itself).
pub fn languages() -> Vec<(&'static str, &'static str)> {
    LANGUAGES
        .iter()
        .map(|(tag, name, _)| (*tag, *name))
        .collect()
}

/// Whether `lang` is one of the portal's languages.
pub fn is_language(lang: &str) -> bool {
    LANGUAGES.iter().any(|(tag, _, _)| *tag == lang)
}

/// The texts for a request: the language the user picked on the portal (`picked`,
/// from their cookie) when it is one of ours, else the best of `Accept-Language`.
pub fn texts_chosen(picked: Option<&str>, accept_language: Option<&str>) -> &'static Texts {
    match picked.filter(|lang| is_language(lang)) {
        Some(lang) => for_lang(lang),
        None => texts_for(accept_language),
    }
}

/// Picks the first supported language in `Accept-Language` order of preference.
pub fn texts_for(accept_language: Option<&str>) -> &'static Texts {
    let mut best: Option<(f32, &'static str)> = None;
    for part in accept_language.unwrap_or("").split(',') {
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
        let Some((lang, _, _)) = LANGUAGES.iter().find(|(t, _, _)| *t == primary) else {
            continue;
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    for_lang(best.map_or(LANGUAGES[0].0, |(_, lang)| lang))
}

/// A text with its `{}` filled in.
pub fn fill(text: &str, value: impl std::fmt::Display) -> String {
    text.replace("{}", &value.to_string())
}

/// The ban message with the minutes filled in.
pub fn banned_message(t: &Texts, seconds_left: u64) -> String {
    t.banned(seconds_left.div_ceil(60).max(1))
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

    /// Each message of a locale file with the variables it uses.
    fn messages(
        source: &str,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut out = std::collections::BTreeMap::new();
        let mut current: Option<String> = None;
        for line in source.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if !line.starts_with(' ') {
                let (id, _) = line
                    .split_once(" =")
                    .expect("`id = text` at the start of a line");
                current = Some(id.to_string());
                out.insert(id.to_string(), Default::default());
            }
            let vars: &mut std::collections::BTreeSet<String> =
                out.get_mut(current.as_ref().unwrap()).unwrap();
            for part in line.split('$').skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                vars.insert(name);
            }
        }
        out
    }

    #[test]
    fn every_language_has_every_message_with_the_same_placeholders() {
        let mut wanted = fluent::ids_of("", Texts::FIELDS, Texts::COUNTED);
        wanted.extend(fluent::ids_of(
            passkeys::PasskeyTexts::PREFIX,
            passkeys::PasskeyTexts::FIELDS,
            passkeys::PasskeyTexts::COUNTED,
        ));
        wanted.extend(fluent::ids_of(
            telegram::TelegramTexts::PREFIX,
            telegram::TelegramTexts::FIELDS,
            telegram::TelegramTexts::COUNTED,
        ));
        wanted.extend(format::MESSAGES.iter().map(|m| m.to_string()));
        let english = messages(LANGUAGES[0].2);
        for (tag, _, source) in LANGUAGES {
            let found = messages(source);
            for id in &wanted {
                assert!(fluent::has_message(tag, id), "{tag} has no message {id}");
                assert_eq!(
                    found.get(id),
                    english.get(id),
                    "{tag}: the placeholders of {id} differ from English's"
                );
            }
            for id in found.keys() {
                assert!(wanted.contains(id), "{tag}: {id} is used by no text");
            }
        }
    }

    #[test]
    fn numbers_take_each_language_s_plural_forms() {
        let (en, uk) = (for_lang("en"), for_lang("uk"));
        assert!(en.banned(1).contains("in one minute"));
        assert!(en.banned(5).contains("in 5 minutes"));
        assert!(uk.banned(1).contains("через 1 хвилину"));
        assert!(uk.banned(2).contains("через 2 хвилини"));
        assert!(uk.banned(5).contains("через 5 хвилин"));
        assert!(uk.banned(21).contains("через 21 хвилину"));
        assert_eq!(
            uk.trust_device(30),
            "Не питати знову на цьому пристрої 30 днів"
        );
        assert_eq!(
            uk.trust_device(2),
            "Не питати знову на цьому пристрої 2 дні"
        );
    }

    #[test]
    fn placeholders_are_left_for_the_caller_and_lines_kept() {
        let t = for_lang("en");
        assert_eq!(t.back_to_panel, "Back to {}");
        assert!(t
            .telegram
            .bot_login
            .starts_with("Sign-in to {site}\nTime: {time}\n"));
        assert!(
            t.telegram.bot_login.contains("{browser}\n\nTap"),
            "{}",
            t.telegram.bot_login
        );
        assert!(!t.back_to_panel.contains('\u{2068}'), "no isolation marks");
    }

    #[test]
    fn ban_message_rounds_minutes_up() {
        assert!(banned_message(for_lang("en"), 61).contains("try again in 2 minutes"));
        assert!(banned_message(for_lang("en"), 1).contains("try again in one minute"));
    }
}

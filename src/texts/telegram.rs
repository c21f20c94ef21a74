//! The Telegram texts, for the portal's pages and the bot's messages, in English and
//! Ukrainian; reached from [`crate::texts::Texts::telegram`]. In bot messages
//! `{site}`, `{time}`, `{ip}`, `{browser}` and `{user}` are filled in.

use std::sync::LazyLock;

use crate::texts::fluent::{fluent_texts, index_of, LANGUAGES};

fluent_texts! {
    /// Every Telegram text.
    pub struct TelegramTexts in "telegram-" {
        ;
        method,
        intro,
        link_button,
        link_title,
        link_intro,
        open_telegram,
        link_waiting,
        /// `{}` is replaced by the account.
        link_done,
        unreachable,
        col_linked,
        remove,
        /// `{}` is replaced by the account.
        remove_confirm,
        last_needs_password,
        none_linked,
        done_on,
        done_off,
        done_linked,
        done_removed,
        /// `{}` is replaced by the account.
        notice_linked,
        /// `{}` is replaced by the account.
        notice_removed,
        step_send,
        step_intro,
        step_waiting,
        step_continue,
        step_again,
        step_refused_wrong,
        step_refused_not_me,
        step_expired,
        step_pending,
        step_cap,
        bot_login,
        bot_not_me,
        bot_confirmed,
        bot_refused_wrong,
        bot_refused_not_me,
        bot_elsewhere_confirmed,
        bot_elsewhere_refused,
        bot_expired,
        bot_linked,
        bot_already,
        bot_other_user,
        bot_bad_token,
        bot_hello,
        bot_stale,
        not_me_hint,
        not_me_button,
        not_me_ended,
    }
    counted {
    }
}

static ALL: LazyLock<Vec<TelegramTexts>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|(tag, _, _)| TelegramTexts::load(tag))
        .collect()
});

/// The Telegram texts of `lang` (the fallback language's for an unknown tag).
pub fn for_lang(lang: &str) -> &'static TelegramTexts {
    &ALL[index_of(lang)]
}

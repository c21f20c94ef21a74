//! The passkey (WebAuthn) texts of the portal, in English and Ukrainian; reached from
//! [`crate::texts::Texts::passkeys`].

use std::sync::LazyLock;

use crate::texts::fluent::{fluent_texts, index_of, LANGUAGES};

fluent_texts! {
    /// Every passkey text a page shows.
    pub struct PasskeyTexts in "passkeys-" {
        ;
        method,
        section_title,
        intro,
        unavailable,
        name_label,
        name_hint,
        add,
        name_empty,
        name_taken,
        register_title,
        register_intro,
        use_device,
        cancel,
        col_name,
        col_added,
        col_last_used,
        col_passwordless,
        never,
        passwordless_on,
        passwordless_off,
        allow_passwordless,
        stop_passwordless,
        not_discoverable,
        delete,
        /// `{}` is replaced by the device name.
        delete_confirm,
        last_needs_password,
        done_added,
        done_deleted,
        done_passwordless_on,
        done_passwordless_off,
        /// `{}` is replaced by the device name.
        notice_added,
        /// `{}` is replaced by the device name.
        notice_deleted,
        step_intro,
        step_button,
        sign_in_with_passkey,
        or,
        err_expired,
        err_invalid,
        err_unknown,
        err_not_passwordless,
        err_not_verified,
        err_cloned,
        err_exists,
        err_taken,
        err_unsupported,
        err_cancelled,
    }
    counted {
        /// `{}` is replaced by the limit.
        name_too_long,
    }
}

static ALL: LazyLock<Vec<PasskeyTexts>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|(tag, _, _)| PasskeyTexts::load(tag))
        .collect()
});

/// The passkey texts of `lang` (the fallback language's for an unknown tag).
pub fn for_lang(lang: &str) -> &'static PasskeyTexts {
    &ALL[index_of(lang)]
}

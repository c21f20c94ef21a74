# gatehouse: English. Every text the portal, its mails and its Telegram and phone
# messages show. Placeholders are Fluent variables ({ $value }, { $site }, ...).

## Portal pages, mails and notices

language = Language
# The robot that dictates a code on a phone call.
call-voice-language = en-US
call-intro = Your sign-in code is
call-again = Again
sign-in-title = Sign in
username = Username
password = Password
remember-me = Keep me signed in on this device
sign-in = Sign in
bad-credentials = Incorrect username or password.
missing-fields = Enter your username and password.
banned = Too many failed attempts. Sign-in is blocked for now: try again in { $count ->
        [one] one minute
       *[other] { $count } minutes
    }.
signed-in-title = You are signed in
signed-in-as = Signed in as
continue-label = Continue
sign-out = Sign out
sign-out-title = Sign out?
stay-signed-in = Stay signed in
switch-account = Sign in as someone else
support-lost = Lost access to your sign-in methods?
summary-on = Two-step verification: on ({ $value })
summary-off = Two-step verification: off
summary-recommend-passkey = Recommended: add a passkey below. It signs you in with your fingerprint, face or screen lock, and cannot be phished.
summary-recommend-app = Recommended: turn on an authenticator app below.
session-expired = Your session expired. Sign in again to go back to the page you were on.
reload-form = Reload the form
back-to-panel = Back to { $value }
support-link = Get help
back-to-site = Back to the start page
signed-out = You have signed out.
denied-title = Access denied
denied = You are not allowed to open this page.
not-found-title = Not found
not-found = There is nothing at this address.
bad-gateway-title = The panel is unavailable
bad-gateway = The panel behind this sign-in could not be reached. Try again in a minute.
gateway-timeout-title = The panel did not answer
gateway-timeout = The panel behind this sign-in took too long to answer. Try again in a minute.
error-title = Something went wrong
csrf-failed = The form expired or was not sent from this site. Please try again.
back-to-login = Back to sign-in
second-step-title = Two-step verification
second-step-intro = Now confirm that it is you, with one of your sign-in methods.
choose-method = Verification methods
method-totp = Authenticator app
method-backup = Backup code
totp-code-label = 6-digit code from your authenticator app
backup-code-label = One of your backup codes
verify = Verify
cancel-sign-out = Cancel and sign out
wrong-code = That code did not work. Check it and try again.
replayed-code = This code was already used. Wait for the next code in your app.
clock-ahead = That code would work if your device's clock were right: it is about { $count ->
        [one] one minute
       *[other] { $count } minutes
    } ahead.
clock-behind = That code would work if your device's clock were right: it is about { $count ->
        [one] one minute
       *[other] { $count } minutes
    } behind.
clock-fix = Turn on automatic date and time (network time) in your phone's settings, or use your app's time correction, then enter a new code.
settings-title = Security
settings-intro = Manage how you sign in.
status-on = On
status-off = Off
enable = Turn on
disable = Turn off
totp-intro = Use an app such as Google Authenticator, Aegis, andOTP or FreeOTP to get a new 6-digit code every 30 seconds.
totp-disable-needs-password = It is your only second factor: enter your password to turn two-step verification off.
totp-enroll-title = Set up your authenticator app
totp-scan = Scan this QR code with your authenticator app.
totp-qr-alt = QR code for your authenticator app
totp-qr-tap = On this phone? Tap the QR code to open your authenticator app.
codes-selected = Selected: press Ctrl+C (⌘C on a Mac) to copy
totp-manual = Or enter this key by hand:
totp-several-devices = To use several devices, scan the same QR code (or enter the same key) on each of them now, before you confirm.
totp-confirm-label = Enter the 6-digit code the app shows
totp-confirm = Turn on
cancel = Cancel
backup-title = Backup codes
backup-used-title = You signed in with a backup code
backup-used-left = Backup codes left: { $value }. Each one works once.
backup-used-one = Only one backup code is left. Make new ones now, so that you can still sign in when your other methods are out of reach.
backup-used-none = That was your last backup code. Make new ones now, so that you can still sign in when your other methods are out of reach.
backup-used-generate = Make new backup codes
backup-intro = Each code works once, when you cannot use your other methods.
backup-left = Codes left:
backup-none-yet = Backup codes are made when you turn on your first second factor.
backup-regenerate = Generate new codes
backup-regenerate-confirm = Your old codes will stop working. Continue?
backup-show-title = Save your backup codes
backup-show-intro = These codes are shown only once. Keep them somewhere safe: each one lets you sign in once if you lose your phone.
copy = Copy
copied = Copied
download = Download
saved-continue = I have saved them
sessions-title = Sessions
sessions-device = Device
sessions-ip = IP address
sessions-created = Signed in
sessions-last-seen = Last seen
sessions-signed-in-with = Signed in with
this-session = This session
this-device = This device
end-session = Sign this session out
end-others = End all other sessions
end-others-confirm = Sign out everywhere else?
password-title = Password
current-password = Current password
new-password = New password
repeat-password = Repeat the new password
change-password = Change password
password-mismatch = The new passwords do not match.
password-too-short = The new password must be at least { $count ->
        [one] one character
       *[other] { $count } characters
    } long.
password-common = This password is too common. Choose one that is harder to guess.
password-wrong = Your current password is incorrect.
done-password = Your password was changed. Your other sessions were ended.
done-totp-on = Your authenticator app is on.
done-totp-off = Your authenticator app is off.
done-2fa-off = Two-step verification is now off for your account.
done-session-ended = The session was ended.
done-others-ended = All your other sessions were ended.
two-factor-needed = This page needs two-step verification. Turn on a second factor below to continue.
confirm-title = Confirm your password
confirm-intro = For your security, enter your password again to make this change.
identity-title = Confirm it is you
identity-intro = Before the first two-step method is added to this account, confirm it is you with a code sent to { $value }.
identity-send = Email me a code
identity-sent = We sent a code to { $value }. Enter it below.
identity-code = Code from the email
identity-wrong = That code is wrong, expired or was tried too often. Ask for a new one.
identity-wait = A code was sent a moment ago; you can ask for another in { $value } s.
identity-done = Confirmed. You can now make the change.
email-identity-subject = Confirm it is you
email-identity-line = Someone who knows your password wants to add a two-step sign-in method to your account. If that is you, enter this code on the security page. It is valid for { $count ->
        [one] one minute
       *[other] { $count } minutes
    }.
confirm = Confirm
back-to-settings = Back to security settings
settings-link = Security settings
email-greeting = Hello,
email-footer = This message was sent by the sign-in service of your panel. If you did not expect it, you can ignore it.
email-open-link = Open the link
email-code-subject = Your sign-in code
email-code-line = Use this code to finish signing in. It is valid for { $count ->
        [one] one minute
       *[other] { $count } minutes
    }.
email-code-not-you = If you did not try to sign in, someone knows your password: change it.
email-confirm-subject = Confirm your email address
email-confirm-line = Enter this code on the security page to confirm this address. It is valid for { $count ->
        [one] one minute
       *[other] { $count } minutes
    }.
email-reset-subject = Reset your password
email-reset-line = Someone (hopefully you) asked to reset the password of your account. Open this link within { $count ->
        [one] one minute
       *[other] { $count } minutes
    } to choose a new one:
email-reset-2fa-line = Using the link switches two-step verification off; you will need to turn it on again.
email-reset-ignore = If you did not ask for this, ignore this message: your password stays as it is.
notice-subject = Security notice for your account
notice-2fa-on = Two-step verification was turned on for your account.
notice-2fa-off = Two-step verification was turned off for your account.
notice-backup = New backup codes were generated for your account; the old ones no longer work.
notice-reset-used = Your password was reset with an emailed link. Every session was ended and two-step verification is off: sign in and turn it on again.
notice-not-you = If this was not you, contact your administrator at once.
method-email = Email code
email-code-label = 6-digit code from the email
email-send-code = Email me a code
email-send-again = Send again
email-sent-to = We sent a code to { $value }.
email-not-sent = We could not send the email right now; we will keep trying. You can also use another method.
email-cooldown = Please wait { $count ->
        [one] one second
       *[other] { $count } seconds
    } before asking for another code.
email-hourly-cap = Too many codes were sent in the last hour. Try again later or use another method.
email-code-dead = This code has expired or was tried too often. Ask for a new one.
email-intro = Get a one-time code by email when you sign in.
email-no-address = Your account has no email address. Ask your administrator to add one.
email-confirm-title = Confirm your email address
email-confirm-label = Code from the email
done-email-on = Email codes are on.
done-email-off = Email codes are off.
forgot-link = Forgot your password?
forgot-title = Reset your password
forgot-intro = Enter your username or email address. If it matches an account, we will email a link to set a new password.
forgot-field = Username or email
forgot-send = Send the link
forgot-sent = If an account matches, we sent a link to its email address. It works once, for { $count ->
        [one] one minute
       *[other] { $count } minutes
    }.
reset-title = Choose a new password
reset-2fa-warning = Setting a new password this way switches two-step verification off for your account; turn it on again after signing in.
reset-save = Set the new password
reset-invalid = This link is invalid, expired or already used. Ask for a new one.
reset-done = Your password was changed and every session was ended.
reset-done-2fa = Two-step verification is now off: turn it on again in your security settings after signing in.
address-title = Email address
address-current = Current address:
address-none = No address yet.
address-new = New email address
address-change = Change address
address-invalid = That does not look like an email address.
address-code-title = Confirm your new address
done-address = Your email address was changed.
notice-address-changed = The email address of your account was changed to { $value }.
phone-use-link = Can't use your other methods? Use your phone
phone-title = Sign in with your phone
phone-warning = Signing in by phone switches two-step verification off for your account, and the panel is told (it may, for example, unlink your saved bank cards). You will need to turn two-step verification on again.
phone-consent = I understand: switch two-step verification off
phone-pick = Number to call
phone-call = Call me
phone-call-again = Call me again
phone-consent-needed = Tick the box to confirm that you understand what happens.
phone-sent-voice = We are calling { $value }. A robot will dictate a 4-digit code.
phone-sent-flash = We are calling { $value } from a number you do not know; you need not answer. Enter the last 4 digits of the number that called.
phone-sent-sms = We sent an SMS with a code to { $value }.
phone-code-voice = The 4 digits the robot dictated
phone-code-flash = The last 4 digits of the number that called you
phone-code-sms = The code from the SMS
phone-limited = Too many calls or messages were requested. Try again later.
phone-failed = We could not call right now. Try again in a moment or use another method.
phone-done-title = Two-step verification is off
phone-done = You are signed in. Because you signed in by phone, two-step verification is now off for your account and the panel was told. Turn it on again now.
phone-setup-again = Set up two-step verification again
phone-sms-text = Your sign-in code: { $value }
notice-phone-login = Someone signed in to your account by phone, so two-step verification was switched off.
numbers-title = Phone numbers
numbers-intro = A reserve way in when your other methods are out of reach. Each number is confirmed by SMS.
number-add-label = Phone number with country code, e.g. +380501234567
number-add = Add number
number-unconfirmed = not confirmed
number-remove = Remove
number-invalid = That is not a valid phone number. Include the country code, e.g. +380501234567.
number-taken = This number belongs to another account.
number-code-title = Confirm your phone number
number-sms-text = Your confirmation code: { $value }
number-code-sent = We sent an SMS with a code to { $value }.
done-number-added = The number was added.
done-number-removed = The number was removed.
new-device-subject = New sign-in to { $site }
new-device-line = Someone signed in to your { $site } account on { $time }, from { $device }, IP address { $ip }. This browser had not been used with your account before.
new-device-not-you = If this was you, there is nothing to do. If it was not you, end that session in your Security settings at once and change your password.
new-device-open-settings = Open the Security settings of { $site } and look at the Sessions list.
trust-device = Do not ask again on this device for { $count ->
        [one] one day
       *[other] { $count } days
    }
trusted-title = Trusted devices
trusted-intro = These browsers skip the second step when you sign in with your password.
trusted-none = No trusted devices. To add one, tick the box at the second step when you sign in.
trusted-until = Trusted until
trusted-forget = Forget
trusted-forget-all = Forget all trusted devices
trusted-forget-all-confirm = Every trusted device will ask for the second step again. Continue?
done-trusted-forgotten = That device will ask for the second step again.
done-trusted-all-forgotten = Every trusted device will ask for the second step again.
method-trusted-device = Trusted device
activity-title = Recent activity
activity-intro = What happened on your account in the last { $count ->
        [one] day
       *[other] { $count } days
    }. Anything you do not recognise? Change your password and end your other sessions.
activity-none = Nothing yet.
activity-login = Signed in
activity-login-failed = Wrong password entered
activity-banned = Sign-in blocked after too many failed attempts
activity-second-factor-failed = Second step failed
activity-telegram-not-me = Sign-in refused in Telegram (This was not me)
activity-factor-on = Turned on
activity-factor-off = Turned off
activity-two-factor-reset = Two-step verification reset
activity-password-changed = Password changed
activity-password-reset = Password reset with an email link
activity-sessions-ended = Sessions ended
activity-backup-codes = New backup codes made
activity-device-trusted = Device trusted
activity-devices-forgotten = Trusted devices forgotten
activity-new-device-alert = Sign-in from a new device reported

## Passkeys

passkeys-method = Passkey or security key
passkeys-section-title = Passkeys and security keys
passkeys-intro = Confirm it is you with your phone, computer, or a USB or NFC security key instead of typing a code.
passkeys-unavailable = Passkeys are not available on this server.
passkeys-name-label = Device name
passkeys-name-hint = For example “Work laptop” or “Blue key”. The name cannot be changed later: to rename a device, delete it and add it again.
passkeys-add = Add device
passkeys-name-empty = Give the device a name.
passkeys-name-too-long = The name is too long: at most { $count ->
        [one] one character
       *[other] { $count } characters
    }.
passkeys-name-taken = You already have a device with that name. Choose another.
passkeys-register-title = Add a passkey or security key
passkeys-register-intro = When you continue, your browser asks for your device: touch the key, or confirm with your fingerprint, face or screen lock.
passkeys-use-device = Use my device
passkeys-cancel = Cancel
passkeys-col-name = Device
passkeys-col-added = Added
passkeys-col-last-used = Last used
passkeys-col-passwordless = Sign in without password
passkeys-never = never
passkeys-passwordless-on = On
passkeys-passwordless-off = Off
passkeys-allow-passwordless = Turn on
passkeys-stop-passwordless = Turn off
passkeys-not-discoverable = Not possible: the device did not store a passkey.
passkeys-delete = Delete
passkeys-delete-confirm = Delete “{ $value }”? You will not be able to sign in with it any more.
passkeys-last-needs-password = This is your only second factor. Enter your password to delete it and turn two-step verification off:
passkeys-done-added = The device was added.
passkeys-done-deleted = The device was deleted.
passkeys-done-passwordless-on = You can now sign in with this device without your password.
passkeys-done-passwordless-off = This device now needs your password first.
passkeys-notice-added = A passkey or security key named “{ $value }” was added to your account.
passkeys-notice-deleted = The passkey or security key named “{ $value }” was removed from your account.
passkeys-step-intro = Use one of your passkeys or security keys.
passkeys-step-button = Use passkey or security key
passkeys-sign-in-with-passkey = Sign in with a passkey
passkeys-or = or
passkeys-err-expired = That took too long, or the request was already used. Try again.
passkeys-err-invalid = Your device’s answer could not be verified. Try again.
passkeys-err-unknown = This passkey or key is not registered to your account.
passkeys-err-not-passwordless = This passkey may not sign in without your password. Sign in with your password, or turn on “Sign in without password” for it in your security settings.
passkeys-err-not-verified = Your device did not check that it is you (PIN, fingerprint or face), so it cannot replace your password. Sign in with your password.
passkeys-err-cloned = This key was refused: its signature counter went backwards, which can mean it was copied. Use another method and tell your administrator.
passkeys-err-exists = This device already holds a passkey for your account. Use another device.
passkeys-err-taken = This device is registered to another account.
passkeys-err-unsupported = This browser cannot use passkeys or security keys. Use another method, or another browser.
passkeys-err-cancelled = The request was cancelled or timed out. Try again.

## Telegram

telegram-method = Telegram
telegram-intro = Confirm sign-ins in Telegram: the bot asks you to tap the number shown on the sign-in page.
telegram-link-button = Link a Telegram account
telegram-link-title = Link a Telegram account
telegram-link-intro = Open the link on a device with Telegram, or scan the QR code with your phone, and press Start in the chat with the bot. The link works once, for 10 minutes.
telegram-open-telegram = Open Telegram
telegram-link-waiting = Waiting for Telegram…
telegram-link-done = Linked: { $value }
telegram-unreachable = Telegram cannot be reached right now. Try again later, or use another method.
telegram-col-linked = Linked
telegram-remove = Unlink
telegram-remove-confirm = Unlink { $value }? It will no longer confirm your sign-ins.
telegram-last-needs-password = This is your only second factor. Enter your password to unlink it and turn two-step verification off:
telegram-none-linked = No Telegram account is linked.
telegram-done-on = Telegram confirmation is on.
telegram-done-off = Telegram confirmation is off. Your linked accounts stay linked.
telegram-done-linked = The Telegram account was linked.
telegram-done-removed = The Telegram account was unlinked.
telegram-notice-linked = The Telegram account { $value } was linked to your account and will confirm your sign-ins.
telegram-notice-removed = The Telegram account { $value } was unlinked from your account.
telegram-step-send = Send a confirmation to Telegram
telegram-step-intro = We sent a message to your Telegram. Tap this number there:
telegram-step-waiting = Waiting for your tap…
telegram-step-continue = I tapped it, continue
telegram-step-again = Send a new confirmation
telegram-step-refused-wrong = A different number was tapped in Telegram, so this sign-in was refused. Send a new confirmation to try again.
telegram-step-refused-not-me = The sign-in was refused in Telegram (“This wasn't me”).
telegram-step-expired = The confirmation expired. Send a new one.
telegram-step-pending = Not confirmed yet: tap the number in Telegram.
telegram-step-cap = Too many confirmations were sent in the last hour. Wait, or use another method.
telegram-bot-login =
    Sign-in to { $site }
    Time: { $time }
    IP address: { $ip }
    Browser: { $browser }

    Tap the number shown on the sign-in page. If this wasn't you, tap “This wasn't me”.
telegram-bot-not-me = This wasn't me
telegram-bot-confirmed = ✅ Sign-in confirmed.
telegram-bot-refused-wrong = ❌ Sign-in refused: a different number was tapped.
telegram-bot-refused-not-me = ❌ Sign-in refused. If it was not you, change your password.
telegram-bot-elsewhere-confirmed = ✅ Sign-in confirmed in another chat.
telegram-bot-elsewhere-refused = ❌ Sign-in refused in another chat.
telegram-bot-expired = ⌛ This sign-in request expired.
telegram-bot-linked = Done: this Telegram account is linked to { $user }. I will ask you here to confirm sign-ins.
telegram-bot-already = This Telegram account is already linked to that account.
telegram-bot-other-user = This Telegram account is linked to another account. Unlink it there first.
telegram-bot-bad-token = This link is invalid or has expired. Open the security settings and link again.
telegram-bot-hello = Hello! I confirm sign-ins. To link your account, use the link on the security settings page.
telegram-bot-stale = This request is no longer valid.
telegram-not-me-hint = Not you? Tap below to sign your account out everywhere at once, then change your password.
telegram-not-me-button = This was not me: sign out everywhere
telegram-not-me-ended = Your account is signed out everywhere and its trusted devices are forgotten. Change your password now.

## Values inside texts: devices and times

device-on = { $browser } on { $os }
device-unknown = Unknown device
# A time, always said to be UTC: the page rewrites it in the reader's time zone.
date-time = { $day } { $month } { $year }, { $time } UTC
month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December

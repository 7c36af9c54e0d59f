//! Workflows (ordered actions) and automation rules (trigger, conditions, workflows to
//! deploy) as IT writes them and the API stores them. Seed 000 is the specification:
//! every option it shows has a field here.

use serde::{Deserialize, Serialize};

/// How a workflow reaches the device, as seed 000's "Workflow Model" names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowModel {
    /// Device Enrollment Program (supervised devices).
    DeviceEnrollmentProgram,
    /// iOS Express Checkout (the locker app unlocks at once).
    ExpressCheckout,
    /// Over the Air.
    OverTheAir,
}

/// The folders of seed 000's "Organizing Workflows". The first four are Lanyard's
/// defaults and read-only; everything an admin creates or clones lands in Custom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Folder {
    /// Check In, Express Checkout, Checkout, Manual Checkout.
    CheckoutWorkflows,
    /// iOS Provisioning, Update iOS.
    DeviceSetupAndUpdateWorkflows,
    /// Set Device Home, Incorrect Device Home.
    UtilityWorkflows,
    /// Workflows kept for reference.
    DeprecatedWorkflows,
    /// New and cloned workflows.
    CustomWorkflows,
}

impl Folder {
    /// Every folder, in the guide's order.
    pub const ALL: [Folder; 5] = [
        Folder::CheckoutWorkflows,
        Folder::DeviceSetupAndUpdateWorkflows,
        Folder::UtilityWorkflows,
        Folder::DeprecatedWorkflows,
        Folder::CustomWorkflows,
    ];

    /// The name the guide gives it.
    pub fn title(self) -> &'static str {
        match self {
            Folder::CheckoutWorkflows => "Checkout Workflows",
            Folder::DeviceSetupAndUpdateWorkflows => "Device Setup & Update Workflows",
            Folder::UtilityWorkflows => "Utility Workflows",
            Folder::DeprecatedWorkflows => "Deprecated Workflows",
            Folder::CustomWorkflows => "Custom Workflows",
        }
    }

    /// Default folders hold the standard set and are not edited through the API.
    pub fn read_only(self) -> bool {
        self != Folder::CustomWorkflows
    }
}

/// Wi-Fi security of an Add WiFi action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WifiSecurity {
    /// No security.
    None,
    /// WPA/WPA2 Personal (a passphrase).
    WpaPersonal,
    /// WPA/WPA2 Enterprise (802.1X with PEAP; the phone asks for credentials unless
    /// given).
    WpaEnterprise,
}

/// Where Set Wallpaper puts the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WallpaperTarget {
    /// Lock screen.
    LockScreen,
    /// Home screen.
    HomeScreen,
    /// Both.
    Both,
}

/// Which version Update iOS installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStrategy {
    /// Seed 000's standard setting ("Long iOS Update Delay"): the oldest version Apple
    /// still signs, so a fleet moves only as far as it must.
    OldestSigned,
    /// The newest version.
    Latest,
}

fn yes() -> bool {
    true
}

/// One action of a workflow. Every variant has braces: serde ignores unknown fields
/// next to the tag of a unit variant, and a misspelt option must be refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Perform MDM Command: any of Clear Passcode, Assign DEP Profile, Delete from MDM.
    PerformMdmCommand {
        /// Clear the passcode (with the phone's UnlockToken).
        #[serde(default)]
        clear_passcode: bool,
        /// Assign this DEP profile (its name or UUID in Apple Business Manager).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assign_dep_profile: Option<String>,
        /// Remove the device from the MDM so its next enrollment is new (seed 001's
        /// pre-enrollment action).
        #[serde(default)]
        delete_from_mdm: bool,
    },
    /// Erase the phone (supervised and DEP devices).
    Erase {
        /// Seed 000's "Erase supervised and DEP devices".
        #[serde(default = "yes")]
        supervised_and_dep: bool,
        /// iOS 17+: come back enrolled on the provisioning network (Return to Service).
        #[serde(default)]
        return_to_service: bool,
    },
    /// Set Timezone: an IANA zone, or a placeholder such as `[Timezone]`.
    SetTimezone {
        /// e.g. `America/Chicago` or `[Timezone]`.
        timezone: String,
    },
    /// Add WiFi: install a Wi-Fi profile.
    AddWifi {
        /// Network Name (SSID).
        ssid: String,
        /// Security.
        security: WifiSecurity,
        /// Passphrase (WPA/WPA2 Personal), or the account password (Enterprise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// Account name for an Enterprise network.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// MAC address: disable randomization.
        #[serde(default)]
        disable_mac_randomization: bool,
        /// Expiration: automatically forget after this many minutes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forget_after_minutes: Option<u32>,
    },
    /// Set Language and Locale.
    SetLanguageAndLocale {
        /// e.g. `en`.
        language: String,
        /// e.g. `en_US`.
        locale: String,
    },
    /// Set Name (supervised): may use placeholders, e.g. `[Department]-[Last Port Number]`.
    SetName {
        /// The name.
        name: String,
    },
    /// Set Wallpaper: an image, and lock screen text.
    SetWallpaper {
        /// PNG or JPEG, base64 (at most 2.8 MB decoded, so it fits one request).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_base64: Option<String>,
        /// Where the image goes.
        #[serde(default = "lock_screen")]
        location: WallpaperTarget,
        /// Lock Screen Text (placeholders allowed), shown as the lock screen footnote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lock_screen_text: Option<String>,
        /// Lock Screen Text color, `#RRGGBB`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text_color: Option<String>,
    },
    /// Set Attribute: Device Home, Device User, or a device custom attribute.
    SetAttribute {
        /// e.g. `Device Home`.
        attribute: String,
        /// e.g. `[Department]`.
        value: String,
    },
    /// Check Out Device: what the unlocked phone shows; done when it is unplugged.
    CheckOutDevice {
        /// Text to display when unlocked, e.g. `[Imprivata Display Name]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_text: Option<String>,
        /// Suppress the blue LED on the cart during checkout.
        #[serde(default)]
        suppress_blue_led: bool,
    },
    /// Check In Device: log out, lock, clear the Device User.
    CheckInDevice {
        /// Launch a blank page before check-in (iOS 17 and below).
        #[serde(default)]
        launch_blank_page: bool,
        /// Logout Actions: apps to log out, e.g. Epic Rover. The phones receive the
        /// apps of the Check In workflows the check-in rules deploy in their signed
        /// policy, so they log them out at every dock, even offline.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        logout_apps: Vec<LogoutApp>,
    },
    /// Add Dynamic Config Profile: profile XML with `$USERID$`-style variables.
    AddDynamicConfigProfile {
        /// Profile Name.
        name: String,
        /// Profile XML.
        profile_xml: String,
    },
    /// Update iOS.
    UpdateIos {
        /// Use the standard settings.
        #[serde(default = "yes")]
        use_standard_settings: bool,
        /// Which version to install.
        #[serde(default = "oldest_signed")]
        strategy: UpdateStrategy,
    },
    /// Send Email: addresses, subject, body; placeholders allowed.
    SendEmail {
        /// The guide's tab: sent before the workflow's other actions run (the default)
        /// or after they all succeeded.
        #[serde(default)]
        when: EmailWhen,
        /// Addresses, or placeholders such as `[Launchpad Manager]`.
        to: Vec<String>,
        /// Subject.
        subject: String,
        /// Body.
        body: String,
    },
    /// Reboot.
    Reboot {},
    /// On Failure: what happens when an action of this workflow fails.
    OnFailure {
        /// Retry this workflow.
        #[serde(default)]
        retry: bool,
        /// Maximum attempts (1–10), counting the first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 10)]
        max_attempts: Option<u8>,
        /// If still failing, run this workflow (its id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_workflow: Option<String>,
        /// Reboot and check in the device.
        #[serde(default)]
        reboot_and_check_in: bool,
    },
}

/// An app the Check In Device action logs out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutApp {
    /// Bundle id, e.g. `com.epic.rover`.
    pub app: String,
    /// Its name in reports, e.g. `Epic Rover`.
    pub name: String,
}

/// When a Send Email action runs within its workflow (seed 000's "Tab").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailWhen {
    /// Before Deployment: ahead of the other actions.
    #[default]
    BeforeDeployment,
    /// After Deployment: once the other actions succeeded.
    AfterDeployment,
}

impl WorkflowSpec {
    /// Whether a run of this workflow takes the phone out of service while it lasts
    /// (an OS update or an erase): such a phone is not handed out meanwhile.
    pub fn holds_device(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::UpdateIos { .. } | Action::Erase { .. }))
    }

    /// The actions in the order a run executes them: Before Deployment emails, the
    /// other actions as written, then After Deployment emails. On Failure is not a step.
    pub fn run_order(&self) -> Vec<&Action> {
        let email = |when: EmailWhen| move |a: &&Action| matches!(a, Action::SendEmail { when: w, .. } if *w == when);
        let mut out: Vec<&Action> = self
            .actions
            .iter()
            .filter(email(EmailWhen::BeforeDeployment))
            .collect();
        out.extend(
            self.actions
                .iter()
                .filter(|a| !matches!(a, Action::SendEmail { .. } | Action::OnFailure { .. })),
        );
        out.extend(
            self.actions
                .iter()
                .filter(email(EmailWhen::AfterDeployment)),
        );
        out
    }
}

fn lock_screen() -> WallpaperTarget {
    WallpaperTarget::LockScreen
}

fn oldest_signed() -> UpdateStrategy {
    UpdateStrategy::OldestSigned
}

impl Action {
    /// Whether the action works only through the MDM (a command or a profile).
    pub fn needs_mdm(&self) -> bool {
        match self {
            Action::PerformMdmCommand {
                clear_passcode,
                assign_dep_profile,
                delete_from_mdm,
            } => *clear_passcode || assign_dep_profile.is_some() || *delete_from_mdm,
            Action::Erase { .. }
            | Action::SetTimezone { .. }
            | Action::AddWifi { .. }
            | Action::SetLanguageAndLocale { .. }
            | Action::SetName { .. }
            | Action::SetWallpaper { .. }
            | Action::AddDynamicConfigProfile { .. }
            | Action::UpdateIos { .. }
            | Action::Reboot {} => true,
            Action::SetAttribute { .. }
            | Action::CheckOutDevice { .. }
            | Action::CheckInDevice { .. }
            | Action::SendEmail { .. }
            | Action::OnFailure { .. } => false,
        }
    }

    /// The action's type name, as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::PerformMdmCommand { .. } => "perform_mdm_command",
            Action::Erase { .. } => "erase",
            Action::SetTimezone { .. } => "set_timezone",
            Action::AddWifi { .. } => "add_wifi",
            Action::SetLanguageAndLocale { .. } => "set_language_and_locale",
            Action::SetName { .. } => "set_name",
            Action::SetWallpaper { .. } => "set_wallpaper",
            Action::SetAttribute { .. } => "set_attribute",
            Action::CheckOutDevice { .. } => "check_out_device",
            Action::CheckInDevice { .. } => "check_in_device",
            Action::AddDynamicConfigProfile { .. } => "add_dynamic_config_profile",
            Action::UpdateIos { .. } => "update_ios",
            Action::SendEmail { .. } => "send_email",
            Action::Reboot {} => "reboot",
            Action::OnFailure { .. } => "on_failure",
        }
    }
}

/// A workflow as admins write it (create and replace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Name, unique (case-insensitive).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// Workflow model.
    pub model: WorkflowModel,
    /// Folder; defaults to Custom Workflows, the only folder the API writes to.
    #[serde(default = "custom")]
    pub folder: Folder,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

fn custom() -> Folder {
    Folder::CustomWorkflows
}

/// A stored workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workflow {
    /// Stable id made from the name, e.g. `check-in`.
    pub id: String,
    /// The workflow.
    #[serde(flatten)]
    pub spec: WorkflowSpec,
    /// Created (ms since epoch).
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

/// What starts an automation rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// When a device is checked in.
    CheckedIn {},
    /// When a device is checked out (granted to a user).
    CheckedOut {},
    /// When a device is unlocked via network username and password.
    UnlockedViaPassword {},
    /// On a schedule, evaluated in each cart's Timezone attribute.
    Schedule(Schedule),
}

impl Trigger {
    /// The trigger's name, as the API spells it (rules are ordered within it).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::CheckedIn {} => "checked_in",
            Trigger::CheckedOut {} => "checked_out",
            Trigger::UnlockedViaPassword {} => "unlocked_via_password",
            Trigger::Schedule(_) => "schedule",
        }
    }
}

/// How often a schedule repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Repeats {
    /// Once, on the date.
    Never,
    /// Every day from the date.
    Daily,
    /// Every week on the date's weekday.
    Weekly,
}

/// "On this date, at this time, repeats": cart-local wall-clock time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// First date, `YYYY-MM-DD`.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub date: String,
    /// Time of day, `HH:MM` (24 h).
    #[schema(pattern = r"^[0-9]{2}:[0-9]{2}$")]
    pub time: String,
    /// Repeats.
    pub repeats: Repeats,
}

/// What a condition looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConditionField {
    /// Device Checkout Status (`checked_in`, `checked_out`, …).
    CheckoutStatus,
    /// Device Battery Level (percent).
    BatteryLevel,
    /// Port Number the device is docked in.
    PortNumber,
    /// Device Home.
    DeviceHome,
    /// Device User (username).
    DeviceUser,
    /// The cart's Department.
    Department,
    /// The cart's Facility.
    Facility,
    /// The cart's name.
    LaunchpadName,
    /// The device's OS version.
    OsVersion,
    /// The device's model.
    DeviceModel,
    /// A custom device or launchpad attribute (named in `attribute`).
    Attribute,
}

/// How a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal (text compares case-insensitively).
    Is,
    /// Not equal.
    IsNot,
    /// Numbers only.
    GreaterThan,
    /// Numbers only.
    GreaterThanOrEqual,
    /// Numbers only.
    LessThan,
    /// Numbers only.
    LessThanOrEqual,
}

impl Operator {
    /// Whether the operator compares numbers.
    pub fn numeric(self) -> bool {
        !matches!(self, Operator::Is | Operator::IsNot)
    }
}

/// One optional condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// What is compared.
    pub field: ConditionField,
    /// The custom attribute's name, for `field: attribute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// How.
    pub op: Operator,
    /// With what: a number, or text that may hold placeholders (`[Department]`).
    #[schema(schema_with = crate::openapi::condition_value)]
    pub value: serde_json::Value,
}

/// An automation rule as admins write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name, unique (case-insensitive).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// When it runs.
    pub trigger: Trigger,
    /// All must hold for the rule to match.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Workflow ids deployed in order (1 to 10).
    #[schema(schema_with = crate::openapi::rule_workflows)]
    pub workflows: Vec<String>,
    /// Enable Rule.
    pub enabled: bool,
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    /// Stable id made from the name.
    pub id: String,
    /// The rule.
    #[serde(flatten)]
    pub spec: RuleSpec,
    /// Place within its trigger, from 1: evaluation is top-down and the first matching
    /// enabled rule wins.
    pub position: u32,
    /// Created (ms since epoch).
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_run_before_or_after_the_other_actions_as_their_tab_says() {
        let spec: WorkflowSpec = serde_json::from_value(serde_json::json!({
            "name": "W", "model": "over_the_air", "actions": [
                {"type": "reboot"},
                {"type": "send_email", "when": "after_deployment", "to": ["a@b.org"], "subject": "done", "body": "x"},
                {"type": "on_failure", "reboot_and_check_in": true},
                {"type": "send_email", "to": ["a@b.org"], "subject": "starting", "body": "x"},
                {"type": "set_name", "name": "[Department]-[Last Port Number]"}
            ]
        }))
        .unwrap();
        let order: Vec<String> = spec
            .run_order()
            .iter()
            .map(|a| match a {
                Action::SendEmail { subject, .. } => format!("email {subject}"),
                other => other.kind().to_owned(),
            })
            .collect();
        assert_eq!(
            order,
            ["email starting", "reboot", "set_name", "email done"]
        );
    }
}

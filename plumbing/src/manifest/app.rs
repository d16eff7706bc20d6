//! The `app` object of an image manifest (aci-format §7): what to run, as
//! whom, with which environment, mount points, ports and isolators.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use super::decode::{
    bool_into, fresh_slice, int_into, string_into, string_map_into, uint_into, Decoded, Fail,
    Frame, GoSlice,
};
use super::isolator::{check_isolators, decode_isolator, Isolator, IsolatorError};
use super::json::{go_quote, Node};
use super::types::AcName;

/// Why an app is not acceptable.
///
/// Display messages name the entry; [`AppError::reference_message`] gives
/// the reference's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// `user` is empty or missing.
    #[error("app: user is required")]
    UserRequired,
    /// `group` is empty or missing.
    #[error("app: group is required")]
    GroupRequired,
    /// `workingDirectory` is not absolute.
    #[error("app: working directory {path:?} is not an absolute path")]
    RelativeWorkingDirectory {
        /// The rejected directory.
        path: String,
    },
    /// An event handler without a name.
    #[error("app: event handler has no name")]
    EmptyEventHandler,
    /// An event handler name other than `pre-start` and `post-stop`.
    #[error("app: event handler name {name:?} is neither \"pre-start\" nor \"post-stop\"")]
    BadEventHandler {
        /// The rejected name.
        name: String,
    },
    /// Two event handlers with one name.
    #[error("app: event handler {name} is given twice")]
    DuplicateEventHandler {
        /// The repeated name.
        name: EventHandlerName,
    },
    /// An environment variable without a name.
    #[error("app: environment variable has no name")]
    EmptyEnvironmentName,
    /// An environment variable name outside `[A-Za-z_][A-Za-z_0-9.-]*`.
    #[error("app: environment variable name {name:?} is not a valid identifier")]
    BadEnvironmentName {
        /// The rejected name.
        name: String,
    },
    /// Two environment variables with one name.
    #[error("app: environment variable {name:?} is given twice")]
    DuplicateEnvironment {
        /// The repeated name.
        name: String,
    },
    /// A port number outside 1..=65535.
    #[error("app: port {name:?}: port {port} is not in 1-65535")]
    PortRange {
        /// The port's name.
        name: String,
        /// The rejected number.
        port: u64,
    },
    /// A port range that runs past 65535.
    #[error("app: port {name:?}: range {port}+{count} ends past 65535")]
    PortEnd {
        /// The port's name.
        name: String,
        /// The first port.
        port: u64,
        /// How many ports.
        count: u64,
    },
    /// An isolator problem.
    #[error("app: {0}")]
    Isolator(#[from] IsolatorError),
}

impl AppError {
    /// The message appc v0.8.11 gives for this problem.
    pub fn reference_message(&self) -> String {
        match self {
            AppError::UserRequired => "user is required".to_owned(),
            AppError::GroupRequired => "group is required".to_owned(),
            AppError::RelativeWorkingDirectory { .. } => {
                "workingDirectory must be an absolute path".to_owned()
            }
            AppError::EmptyEventHandler => "eventHandler \"name\" cannot be empty".to_owned(),
            AppError::BadEventHandler { name } => {
                format!("bad eventHandler \"name\": {}", go_quote(name))
            }
            AppError::DuplicateEventHandler { name } => {
                format!(
                    "Only one eventHandler of name {} allowed",
                    go_quote(name.as_str())
                )
            }
            AppError::EmptyEnvironmentName => {
                "environment variable name must not be empty".to_owned()
            }
            AppError::BadEnvironmentName { name } => format!(
                "environment variable does not have valid identifier {}",
                go_quote(name)
            ),
            AppError::DuplicateEnvironment { name } => {
                format!("duplicate environment variable of name {}", go_quote(name))
            }
            AppError::PortRange { .. } => "port must be in 1-65535 range".to_owned(),
            AppError::PortEnd { .. } => "end of port range must be in 1-65535 range".to_owned(),
            AppError::Isolator(e) => e.reference_message(),
        }
    }
}

impl From<AppError> for Fail {
    fn from(e: AppError) -> Self {
        Fail::Invalid(e.reference_message())
    }
}

/// When an event handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventHandlerName {
    /// `pre-start`: before the app's exec.
    PreStart,
    /// `post-stop`: after the app exits.
    PostStop,
}

impl EventHandlerName {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventHandlerName::PreStart => "pre-start",
            EventHandlerName::PostStop => "post-stop",
        }
    }
}

impl FromStr for EventHandlerName {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pre-start" => Ok(EventHandlerName::PreStart),
            "post-stop" => Ok(EventHandlerName::PostStop),
            "" => Err(AppError::EmptyEventHandler),
            _ => Err(AppError::BadEventHandler { name: s.to_owned() }),
        }
    }
}

impl fmt::Display for EventHandlerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command run on an app event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventHandler {
    /// When it runs.
    pub name: EventHandlerName,
    /// The command; `None` prints as `null`.
    pub exec: Option<Vec<String>>,
}

/// One environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EnvironmentVariable {
    /// The name, `[A-Za-z_][A-Za-z_0-9.-]*`.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A place where the runtime may mount a volume.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MountPoint {
    /// The mount point name; empty when the JSON left it out (the
    /// reference accepts that).
    pub name: AcName,
    /// The path inside the app; the reference does not check it.
    pub path: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
}

impl Default for MountPoint {
    fn default() -> Self {
        MountPoint {
            name: AcName::empty(),
            path: String::new(),
            read_only: false,
        }
    }
}

/// A port (range) the app listens on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    /// The port name; empty when the JSON left it out.
    pub name: AcName,
    /// `tcp`, `udp`, … (not checked).
    pub protocol: String,
    /// The first port, 1..=65535.
    pub port: u64,
    /// How many consecutive ports; a 0 or missing count is read as 1.
    pub count: u64,
    /// Whether the runtime passes the socket in.
    pub socket_activated: bool,
}

impl Default for Port {
    fn default() -> Self {
        Port {
            name: AcName::empty(),
            protocol: String::new(),
            port: 0,
            count: 0,
            socket_activated: false,
        }
    }
}

impl Port {
    /// The reference's port check (aci-format §7). The sum wraps like Go's
    /// `uint`, so the verdict matches even for absurd counts.
    pub fn check(&self) -> Result<(), AppError> {
        if !(1..=65535).contains(&self.port) {
            return Err(AppError::PortRange {
                name: self.name.to_string(),
                port: self.port,
            });
        }
        if self.port.wrapping_add(self.count) > 65536 {
            return Err(AppError::PortEnd {
                name: self.name.to_string(),
                port: self.port,
                count: self.count,
            });
        }
        Ok(())
    }
}

/// The `app` object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    /// The command; `None` (absent or `null`) prints as `"exec": null`.
    pub exec: Option<Vec<String>>,
    /// Event handlers, at most one per name.
    pub event_handlers: Vec<EventHandler>,
    /// The user to run as (name or number), required.
    pub user: String,
    /// The group to run as (name or number), required.
    pub group: String,
    /// Extra group ids. Go's `[]int`, so negative ids are accepted.
    pub supplementary_gids: Vec<i64>,
    /// Absolute working directory, or empty for the default.
    pub working_directory: String,
    /// Environment variables, unique by name.
    pub environment: Vec<EnvironmentVariable>,
    /// Mount points.
    pub mount_points: Vec<MountPoint>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Isolators.
    pub isolators: Vec<Isolator>,
    /// Free-form annotations for the user.
    pub user_annotations: BTreeMap<String, String>,
    /// Free-form labels for the user.
    pub user_labels: BTreeMap<String, String>,
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_environment(environment: &[EnvironmentVariable]) -> Result<(), AppError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for variable in environment {
        let name = variable.name.as_str();
        if name.is_empty() {
            return Err(AppError::EmptyEnvironmentName);
        }
        if !valid_env_name(name) {
            return Err(AppError::BadEnvironmentName {
                name: name.to_owned(),
            });
        }
        if seen.contains(&name) {
            return Err(AppError::DuplicateEnvironment {
                name: name.to_owned(),
            });
        }
        seen.insert(name);
    }
    Ok(())
}

impl App {
    /// The reference's app check, in its order: user, group, working
    /// directory, repeated event handlers, environment, isolators.
    pub fn check(&self) -> Result<(), AppError> {
        if self.user.is_empty() {
            return Err(AppError::UserRequired);
        }
        if self.group.is_empty() {
            return Err(AppError::GroupRequired);
        }
        if !self.working_directory.is_empty() && !self.working_directory.starts_with('/') {
            return Err(AppError::RelativeWorkingDirectory {
                path: self.working_directory.clone(),
            });
        }
        let mut handlers: Vec<EventHandlerName> = Vec::new();
        for handler in &self.event_handlers {
            if handlers.contains(&handler.name) {
                return Err(AppError::DuplicateEventHandler { name: handler.name });
            }
            handlers.push(handler.name);
        }
        check_environment(&self.environment)?;
        for port in &self.ports {
            port.check()?;
        }
        check_isolators(&self.isolators)?;
        Ok(())
    }
}

/// The app as Go's decoder holds it between occurrences of a repeated
/// `"app"` key: a second occurrence decodes *into* the first one.
#[derive(Clone, Debug, Default)]
pub(crate) struct AppState {
    exec: Option<Vec<String>>,
    event_handlers: GoSlice<Option<EventHandler>>,
    user: String,
    group: String,
    supplementary_gids: GoSlice<i64>,
    working_directory: String,
    environment: Option<Vec<EnvironmentVariable>>,
    mount_points: GoSlice<MountPoint>,
    ports: GoSlice<Port>,
    isolators: GoSlice<Option<Isolator>>,
    user_annotations: Option<BTreeMap<String, String>>,
    user_labels: Option<BTreeMap<String, String>>,
}

impl AppState {
    pub fn to_app(&self) -> App {
        App {
            exec: self.exec.clone(),
            event_handlers: self
                .event_handlers
                .clone()
                .into_vec()
                .into_iter()
                .flatten()
                .collect(),
            user: self.user.clone(),
            group: self.group.clone(),
            supplementary_gids: self.supplementary_gids.clone().into_vec(),
            working_directory: self.working_directory.clone(),
            environment: self.environment.clone().unwrap_or_default(),
            mount_points: self.mount_points.clone().into_vec(),
            ports: self.ports.clone().into_vec(),
            isolators: self
                .isolators
                .clone()
                .into_vec()
                .into_iter()
                .flatten()
                .collect(),
            user_annotations: self.user_annotations.clone().unwrap_or_default(),
            user_labels: self.user_labels.clone().unwrap_or_default(),
        }
    }
}

const APP_FIELDS: [&str; 12] = [
    "exec",
    "eventHandlers",
    "user",
    "group",
    "supplementaryGIDs",
    "workingDirectory",
    "environment",
    "mountPoints",
    "ports",
    "isolators",
    "userAnnotations",
    "userLabels",
];

/// `Exec.UnmarshalJSON`: a fresh list of strings, `None` for `null`.
fn decode_exec(node: &Node) -> Decoded<Option<Vec<String>>> {
    fresh_slice(node, "types.exec", |f, item, slot: &mut String| {
        string_into(f, item, "string", slot);
        Ok(())
    })
}

fn decode_event_handler(node: &Node) -> Decoded<EventHandler> {
    let mut frame = Frame::new();
    let mut name = String::new();
    let mut exec = None;
    frame.object(
        node,
        "eventHandler",
        "types.eventHandler",
        &["name", "exec"],
        |f, i, v| {
            if i == 0 {
                string_into(f, v, "string", &mut name);
            } else {
                exec = f.custom(|| decode_exec(v))?;
            }
            Ok(())
        },
    )?;
    frame.finish()?;
    let name = name.parse::<EventHandlerName>()?;
    Ok(EventHandler { name, exec })
}

fn decode_environment(node: &Node) -> Decoded<Option<Vec<EnvironmentVariable>>> {
    let environment = fresh_slice(
        node,
        "types.environment",
        |f, item, slot: &mut EnvironmentVariable| {
            f.object(
                item,
                "EnvironmentVariable",
                "types.EnvironmentVariable",
                &["name", "value"],
                |f, i, v| {
                    let target = if i == 0 {
                        &mut slot.name
                    } else {
                        &mut slot.value
                    };
                    string_into(f, v, "string", target);
                    Ok(())
                },
            )
        },
    )?;
    check_environment(environment.as_deref().unwrap_or_default())?;
    Ok(environment)
}

pub(crate) fn decode_port(node: &Node) -> Decoded<Port> {
    let mut frame = Frame::new();
    let mut port = Port::default();
    let fields = ["name", "protocol", "port", "count", "socketActivated"];
    frame.object(node, "port", "types.port", &fields, |f, i, v| {
        match i {
            0 => port.name = f.custom(|| super::decode_name(v))?,
            1 => string_into(f, v, "string", &mut port.protocol),
            2 => uint_into(f, v, "uint", &mut port.port),
            3 => uint_into(f, v, "uint", &mut port.count),
            _ => bool_into(f, v, "bool", &mut port.socket_activated),
        }
        Ok(())
    })?;
    frame.finish()?;
    port.check()?;
    // A missing or zero count means one port (aci-format §7).
    if port.count == 0 {
        port.count = 1;
    }
    Ok(port)
}

/// `App.UnmarshalJSON`: decodes `node` into a copy of `state` (the value
/// left by an earlier `"app"` key, or a fresh one) and checks the result.
pub(crate) fn decode_app(source: &[u8], node: &Node, state: AppState) -> Decoded<AppState> {
    let mut frame = Frame::new();
    let mut app = state;
    frame.object(node, "app", "types.app", &APP_FIELDS, |f, i, v| {
        match i {
            0 => app.exec = f.custom(|| decode_exec(v))?,
            1 => app
                .event_handlers
                .decode(f, v, "[]types.EventHandler", |f, item, slot| {
                    *slot = Some(f.custom(|| decode_event_handler(item))?);
                    Ok(())
                })?,
            2 => string_into(f, v, "string", &mut app.user),
            3 => string_into(f, v, "string", &mut app.group),
            4 => app
                .supplementary_gids
                .decode(f, v, "[]int", |f, item, slot| {
                    int_into(f, item, "int", slot);
                    Ok(())
                })?,
            5 => string_into(f, v, "string", &mut app.working_directory),
            6 => app.environment = f.custom(|| decode_environment(v))?,
            7 => app
                .mount_points
                .decode(f, v, "[]types.MountPoint", |f, item, slot| {
                    let fields = ["name", "path", "readOnly"];
                    f.object(
                        item,
                        "MountPoint",
                        "types.MountPoint",
                        &fields,
                        |f, i, v| {
                            match i {
                                0 => slot.name = f.custom(|| super::decode_name(v))?,
                                1 => string_into(f, v, "string", &mut slot.path),
                                _ => bool_into(f, v, "bool", &mut slot.read_only),
                            }
                            Ok(())
                        },
                    )
                })?,
            8 => app.ports.decode(f, v, "[]types.Port", |f, item, slot| {
                *slot = f.custom(|| decode_port(item))?;
                Ok(())
            })?,
            9 => app
                .isolators
                .decode(f, v, "types.Isolators", |f, item, slot| {
                    *slot = Some(f.custom(|| decode_isolator(source, item))?);
                    Ok(())
                })?,
            10 => string_map_into(f, v, "types.UserAnnotations", &mut app.user_annotations),
            _ => string_map_into(f, v, "types.UserLabels", &mut app.user_labels),
        }
        Ok(())
    })?;
    frame.finish()?;
    app.to_app().check()?;
    if app.environment.is_none() {
        app.environment = Some(Vec::new());
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::super::json::parse;
    use super::*;

    fn app(json: &str) -> Result<App, String> {
        let node = parse(json.as_bytes()).unwrap();
        decode_app(json.as_bytes(), &node, AppState::default())
            .map(|s| s.to_app())
            .map_err(|f| f.message())
    }

    #[test]
    fn user_group_and_working_directory_are_checked() {
        // aci-format §15 case 10.
        assert_eq!(app(r#"{"group":"0"}"#).unwrap_err(), "user is required");
        assert_eq!(app(r#"{"user":"0"}"#).unwrap_err(), "group is required");
        assert_eq!(
            app(r#"{"user":"0","group":"0","workingDirectory":"opt"}"#).unwrap_err(),
            "workingDirectory must be an absolute path"
        );
        let ok = app(r#"{"user":"0","group":"0","supplementaryGIDs":[-1, 5]}"#).unwrap();
        assert_eq!(ok.supplementary_gids, vec![-1, 5]);
        assert_eq!(ok.exec, None);
    }

    #[test]
    fn environment_names_are_checked() {
        assert_eq!(
            app(r#"{"user":"0","group":"0","environment":[{"name":"1FOO"}]}"#).unwrap_err(),
            "environment variable does not have valid identifier \"1FOO\""
        );
        assert_eq!(
            app(r#"{"user":"0","group":"0","environment":[{"name":"A"},{"name":"A"}]}"#)
                .unwrap_err(),
            "duplicate environment variable of name \"A\""
        );
        assert_eq!(
            app(r#"{"user":"0","group":"0","environment":[{"value":"x"}]}"#).unwrap_err(),
            "environment variable name must not be empty"
        );
        assert!(app(r#"{"user":"0","group":"0","environment":[{"name":"my.var-2"}]}"#).is_ok());
    }

    #[test]
    fn event_handlers_are_checked() {
        assert_eq!(
            app(r#"{"user":"0","group":"0","eventHandlers":[{"name":"on-start"}]}"#).unwrap_err(),
            "bad eventHandler \"name\": \"on-start\""
        );
        assert_eq!(
            app(r#"{"user":"0","group":"0","eventHandlers":[{"exec":[]}]}"#).unwrap_err(),
            "eventHandler \"name\" cannot be empty"
        );
        assert_eq!(
            app(r#"{"user":"0","group":"0","eventHandlers":[{"name":"pre-start"},{"name":"pre-start"}]}"#)
                .unwrap_err(),
            "Only one eventHandler of name \"pre-start\" allowed"
        );
    }

    #[test]
    fn ports_follow_the_reference() {
        // aci-format §15 case 11.
        let port = |p: &str| app(&format!(r#"{{"user":"0","group":"0","ports":[{p}]}}"#));
        assert_eq!(
            port(r#"{"name":"a","port":0}"#).unwrap_err(),
            "port must be in 1-65535 range"
        );
        assert_eq!(
            port(r#"{"name":"a","port":65536}"#).unwrap_err(),
            "port must be in 1-65535 range"
        );
        assert_eq!(
            port(r#"{"name":"a","port":65535,"count":2}"#).unwrap_err(),
            "end of port range must be in 1-65535 range"
        );
        assert_eq!(
            port(r#"{"name":"a","port":65535}"#).unwrap().ports[0].count,
            1
        );
        assert_eq!(
            port(r#"{"name":"a","port":80,"count":0}"#).unwrap().ports[0].count,
            1
        );
        assert_eq!(
            port(r#"{"name":"a","port":80,"count":3}"#).unwrap().ports[0].count,
            3
        );
        assert_eq!(
            port(r#"{"name":"a.b","port":80}"#).unwrap_err(),
            "ACName must contain only lower case alphanumeric characters plus \"-\""
        );
        assert_eq!(
            port(r#"{"name":"a","port":-1}"#).unwrap_err(),
            "json: cannot unmarshal number -1 into Go struct field app.ports of type uint"
        );
    }

    #[test]
    fn a_repeated_app_key_decodes_into_the_first() {
        let node =
            parse(br#"{"user":"0","group":"0","mountPoints":[{"name":"a","path":"/a"}]}"#).unwrap();
        let first = decode_app(b"", &node, AppState::default()).unwrap();
        let node = parse(br#"{"user":"1","mountPoints":[{"name":"b"}]}"#).unwrap();
        let second = decode_app(b"", &node, first).unwrap().to_app();
        assert_eq!((second.user.as_str(), second.group.as_str()), ("1", "0"));
        assert_eq!(second.mount_points[0].path, "/a");
        assert_eq!(second.mount_points[0].name.as_str(), "b");
    }
}

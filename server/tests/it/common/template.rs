//! `templates/ecs.yaml` as JSON in CloudFormation's long form (`!Ref X` becomes
//! `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` becomes
//! `{"Fn::Sub": s}`), with the lookups the IAM tests need.

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// Conditions of policies for opt-in features, off by default: `ExecEnabled` (ECS Exec: the
/// SSM agent's `ssmmessages` channel, which has no resource-level permissions) and `HasKmsKey`
/// (the ECS agent decrypting the secrets with the operator's KMS key).
pub const OPT_IN: &[&str] = &["ExecEnabled", "HasKmsKey"];

pub struct Template(pub Value);

impl Template {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/ecs.yaml");
        let text = std::fs::read_to_string(path).expect("templates/ecs.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("ecs.yaml is YAML");
        Self(long_form(yaml))
    }

    pub fn resource(&self, name: &str) -> &Value {
        let r = &self.0["Resources"][name];
        assert!(r.is_object(), "ecs.yaml has no resource {name}");
        r
    }

    /// Every statement that applies to role `role` as the template deploys by default: its
    /// inline policies and every AWS::IAM::Policy attached to it, except those of the opt-in
    /// features in [`OPT_IN`] (off unless an operator turns them on, and called by an AWS agent
    /// in the task, not by the server's code).
    pub fn role_statements(&self, role: &str) -> Vec<Value> {
        let mut documents: Vec<&Value> = list_ref(&self.resource(role)["Properties"]["Policies"])
            .into_iter()
            .map(|p| &p["PolicyDocument"])
            .collect();
        let attached = json!({"Ref": role});
        for resource in self.0["Resources"].as_object().expect("Resources").values() {
            let opt_in = resource["Condition"]
                .as_str()
                .is_some_and(|c| OPT_IN.contains(&c));
            if resource["Type"] == "AWS::IAM::Policy"
                && !opt_in
                && list_ref(&resource["Properties"]["Roles"]).contains(&&attached)
            {
                documents.push(&resource["Properties"]["PolicyDocument"]);
            }
        }
        documents
            .into_iter()
            .flat_map(|d| list(&d["Statement"]))
            .inspect(|s| assert_eq!(s["Effect"], "Allow", "only Allow statements: {s:#}"))
            .collect()
    }

    /// Adds a statement to the task role's first policy (to show a check fails).
    pub fn add_task_role_actions(&mut self, actions: &[&str]) {
        let statements = self.0["Resources"]["TaskRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array_mut()
            .expect("statements");
        statements.push(json!({"Effect": "Allow", "Action": actions, "Resource": "*"}));
    }
}

/// The actions of `statements`.
pub fn actions(statements: &[Value]) -> BTreeSet<String> {
    statements
        .iter()
        .flat_map(|s| list(&s["Action"]))
        .map(|a| a.as_str().expect("an action is a string").to_owned())
        .collect()
}

/// A value that may be one item or a list, as a list.
pub fn list(v: &Value) -> Vec<Value> {
    list_ref(v).into_iter().cloned().collect()
}

fn list_ref(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// What an item can be: both sides of an `Fn::If`, without `AWS::NoValue`.
pub fn branches(v: &Value) -> Vec<Value> {
    match v.get("Fn::If").and_then(Value::as_array) {
        Some(arms) if arms.len() == 3 => arms[1..].iter().flat_map(branches).collect(),
        _ if v == &json!({"Ref": "AWS::NoValue"}) => Vec::new(),
        _ => vec![v.clone()],
    }
}

/// The template names (parameters, resources) a fragment refers to with `Ref`.
pub fn refs(v: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    match v {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Ref")
                && !name.starts_with("AWS::")
            {
                found.insert(name.clone());
            }
            map.values().for_each(|x| found.extend(refs(x)));
        }
        Value::Array(items) => items.iter().for_each(|x| found.extend(refs(x))),
        _ => {}
    }
    found
}

fn long_form(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).expect("number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), long_form(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let value = long_form(tagged.value);
            match name {
                "Ref" => json!({"Ref": value}),
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) = s.split_once('.').expect("A.B");
                        json!({"Fn::GetAtt": [resource, attribute]})
                    }
                    other => json!({"Fn::GetAtt": other}),
                },
                "Condition" => json!({"Condition": value}),
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    }
}

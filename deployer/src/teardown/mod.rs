//! Taking an environment down in an order that cannot leave it half-done: see what the stack
//! owns (`plan`), have the operator confirm (`confirm`), stop the service, empty the
//! repository so CloudFormation can delete it (`repository`), delete the stack while its
//! events stream, then retire the releases wsctl registered (`releases`).

pub mod confirm;
pub mod plan;
pub mod releases;
pub mod repository;

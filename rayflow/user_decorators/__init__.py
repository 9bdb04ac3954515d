"""Metaflow's user decorators and mutators, at Metaflow's module paths:
`rayflow.user_decorators.user_step_decorator` (UserStepDecorator, user_step_decorator,
StepMutator), `.user_flow_decorator` (FlowMutator), `.mutable_step` (MutableStep) and
`.mutable_flow` (MutableFlow). `process` applies them to a flow; `wrapping` runs a step inside
its user step decorators."""

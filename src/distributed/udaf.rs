//! runsize's aggregate functions: `runsize_customer` (one customer's Newton steps and
//! per-event terms, the local pass's kernel) and `runsize_sum` (those results summed by
//! article-size and globally, with the customers' new states), and their registration.
//!
//! Both take the pass's parameters as a file path (a string literal, last argument):
//! the driver writes them once per pass (O(article-sizes)) where every node reads the
//! events too; each process keeps the last one it read.

use super::buffer::{row_states, Args, Buffered, Groups, Row};
use super::DistError;
use crate::model::{CustomerOut, PassContext, PassSums};
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, LargeBinaryBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::PhysicalExpr;
use std::any::Any;
use std::sync::{Arc, Mutex};

/// Name of the per-customer aggregate.
pub const CUSTOMER: &str = "runsize_customer";
/// Name of the summing aggregate.
pub const SUM: &str = "runsize_sum";

/// Argument types of `runsize_customer(cust, e, asz, y, s0, u0, m, feat, params)`.
const CUSTOMER_ARGS: [DataType; 9] = [
    DataType::UInt32,
    DataType::UInt64,
    DataType::UInt32,
    DataType::UInt8,
    DataType::Float64,
    DataType::Float32,
    DataType::Float32,
    DataType::Boolean,
    DataType::Utf8,
];

/// The last pass context this process read: (path, parameters).
type Cached = Option<(String, Arc<PassContext>)>;
static CONTEXT: Mutex<Cached> = Mutex::new(None);

/// The pass parameters at `path` (read once per path per process).
pub fn context(path: &str) -> Result<Arc<PassContext>> {
    let mut slot = CONTEXT
        .lock()
        .map_err(|_| DataFusionError::Execution("pass context cache poisoned".into()))?;
    if let Some((p, ctx)) = slot.as_ref() {
        if p == path {
            return Ok(ctx.clone());
        }
    }
    let bytes = std::fs::read(path)
        .map_err(|e| DataFusionError::Execution(format!("pass parameters {path}: {e}")))?;
    let ctx = Arc::new(
        PassContext::from_bytes(&bytes).map_err(|e| DataFusionError::Execution(e.to_string()))?,
    );
    *slot = Some((path.to_string(), ctx.clone()));
    Ok(ctx)
}

/// The parameters' path: the aggregate's last argument, a string literal.
fn params_path(exprs: &[Arc<dyn PhysicalExpr>]) -> Result<String> {
    let Some(last) = exprs.last() else {
        return exec_err!("runsize aggregates take the parameters' path last");
    };
    let any: &dyn Any = last.as_ref();
    match any.downcast_ref::<Literal>().map(Literal::value) {
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s))) => Ok(s.clone()),
        _ => exec_err!("runsize aggregates take the parameters' path as a string literal"),
    }
}

/// A state field of binary values (large for per-customer values: one partition's can pass
/// 2 GiB, the limit of i32 offsets, at 10M events).
fn binary_state(name: &str, what: &str, t: DataType) -> FieldRef {
    Arc::new(Field::new(format_state_name(name, what), t, true))
}

fn exec(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// `runsize_customer`: one group = one customer's events; the result is the customer's
/// [`CustomerOut`] (postcard bytes).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CustomerUdaf {
    signature: Signature,
}

impl Default for CustomerUdaf {
    fn default() -> Self {
        CustomerUdaf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for CustomerUdaf {
    fn name(&self) -> &str {
        CUSTOMER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if t.len() != CUSTOMER_ARGS.len() {
            return plan_err!(
                "{CUSTOMER}(cust, e, asz, y, s0, u0, m, feat, params) takes 9 arguments, not {}",
                t.len()
            );
        }
        Ok(CUSTOMER_ARGS.to_vec())
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::LargeBinary)
    }

    fn accumulator(&self, a: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let ctx = context(&params_path(a.exprs)?)?;
        Ok(Box::new(CustomerAcc {
            ctx,
            buf: Buffered::default(),
        }))
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, a: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let ctx = context(&params_path(a.exprs)?)?;
        Ok(Box::new(CustomerGroups {
            ctx,
            groups: Groups::default(),
        }))
    }

    fn state_fields(&self, a: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![binary_state(a.name, "rows", DataType::LargeBinary)])
    }
}

/// `runsize_customer` for one group (DataFusion uses it without GROUP BY).
#[derive(Debug)]
struct CustomerAcc {
    ctx: Arc<PassContext>,
    buf: Buffered,
}

impl Accumulator for CustomerAcc {
    fn update_batch(&mut self, v: &[ArrayRef]) -> Result<()> {
        let a = Args::new(v)?;
        let nulls = a.has_nulls();
        for i in 0..a.cust.len() {
            a.push(i, &mut self.buf, nulls);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(col) = states.first() else {
            return Ok(());
        };
        for b in col.as_binary::<i64>().iter().flatten() {
            self.buf.merge(b)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut b = Vec::new();
        self.buf.encode(&mut b);
        Ok(vec![ScalarValue::LargeBinary(Some(b))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::LargeBinary(self.buf.finish(&self.ctx)?))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.buf.rows.capacity() * std::mem::size_of::<Row>()
    }
}

/// `runsize_customer` for all groups of a GROUP BY at once: each customer's rows
/// appended to its buffer by group index (no per-group accumulator objects or array
/// slices), the kernel run per group on emit.
#[derive(Debug)]
struct CustomerGroups {
    ctx: Arc<PassContext>,
    groups: Groups,
}

impl GroupsAccumulator for CustomerGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups
            .update(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.groups.take(emit_to);
        let mut out = LargeBinaryBuilder::with_capacity(groups.len(), 0);
        for mut b in groups {
            match b.finish(&self.ctx)? {
                Some(bytes) => out.append_value(bytes),
                None => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.groups.state(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.merge(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(vec![row_states(values, opt_filter)?])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.groups.capacity() * std::mem::size_of::<Buffered>()
            + self.groups.rows * std::mem::size_of::<Row>()
    }
}

/// `runsize_sum(r, params)`: the customers' results summed into one [`PassSums`]
/// (postcard bytes).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SumUdaf {
    signature: Signature,
}

impl Default for SumUdaf {
    fn default() -> Self {
        SumUdaf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for SumUdaf {
    fn name(&self) -> &str {
        SUM
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if t.len() != 2 {
            return plan_err!("{SUM}(r, params) takes 2 arguments, not {}", t.len());
        }
        Ok(vec![DataType::LargeBinary, DataType::Utf8])
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, a: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let ctx = context(&params_path(a.exprs)?)?;
        Ok(Box::new(SumAcc {
            sums: PassSums::new(ctx.article_sizes()),
        }))
    }

    fn state_fields(&self, a: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![binary_state(a.name, "sums", DataType::Binary)])
    }
}

/// Running sums of `runsize_sum`.
#[derive(Debug)]
struct SumAcc {
    sums: PassSums,
}

impl Accumulator for SumAcc {
    fn update_batch(&mut self, v: &[ArrayRef]) -> Result<()> {
        let Some(col) = v.first() else {
            return Ok(());
        };
        for b in col.as_binary::<i64>().iter().flatten() {
            let out = CustomerOut::from_bytes(b).map_err(exec)?;
            self.sums.add(&out).map_err(exec)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(col) = states.first() else {
            return Ok(());
        };
        for b in col.as_binary::<i32>().iter().flatten() {
            let part = PassSums::from_bytes(b).map_err(exec)?;
            self.sums.merge(part).map_err(exec)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(
            self.sums.to_bytes().map_err(exec)?,
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.heap_bytes()
    }
}

/// runsize's aggregate functions, to register on every node (client, scheduler,
/// executors).
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(CustomerUdaf::default())),
        Arc::new(AggregateUDF::from(SumUdaf::default())),
    ]
}

/// Register runsize's aggregates in a session state (scheduler, standalone).
pub fn register_state(state: &mut datafusion::execution::SessionState) -> Result<(), DistError> {
    use datafusion::execution::FunctionRegistry;
    for f in functions() {
        state.register_udaf(f)?;
    }
    Ok(())
}

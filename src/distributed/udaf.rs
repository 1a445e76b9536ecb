//! runsize's aggregate functions: `runsize_customer` (one customer's Newton steps and
//! per-event terms, the local pass's kernel) and `runsize_sum` (those results summed by
//! article-size and globally, with the customers' new states), and their registration.
//!
//! Both take the pass's parameters as a file path (a string literal, last argument):
//! the driver writes them once per pass (O(article-sizes)) where every node reads the
//! events too; each process keeps the last one it read.

use super::DistError;
use crate::model::{CustomerOut, CustomerRows, CustomerStart, PassContext, PassSums};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float32Type, Float64Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
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
            start: None,
            rows: Vec::new(),
        }))
    }

    fn state_fields(&self, a: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![binary_state(a.name, "rows", DataType::LargeBinary)])
    }
}

/// A customer's start: (cust, s0, u0, m, feat).
type Start = (u32, f64, f32, f32, bool);

/// One customer's buffered rows: start and (event index, article-size, outcome).
#[derive(Debug)]
struct CustomerAcc {
    ctx: Arc<PassContext>,
    start: Option<Start>,
    rows: Vec<(u64, u32, u8)>,
}

impl CustomerAcc {
    fn blob(&self) -> Result<ScalarValue> {
        let b = postcard::to_stdvec(&(&self.start, &self.rows)).map_err(exec)?;
        Ok(ScalarValue::LargeBinary(Some(b)))
    }
}

impl Accumulator for CustomerAcc {
    fn update_batch(&mut self, v: &[ArrayRef]) -> Result<()> {
        if v.len() < 8 {
            return exec_err!("{CUSTOMER}: {} columns", v.len());
        }
        let cust = v[0].as_primitive::<UInt32Type>();
        let e = v[1].as_primitive::<UInt64Type>();
        let asz = v[2].as_primitive::<UInt32Type>();
        let y = v[3].as_primitive::<UInt8Type>();
        let s0 = v[4].as_primitive::<Float64Type>();
        let u0 = v[5].as_primitive::<Float32Type>();
        let m = v[6].as_primitive::<Float32Type>();
        let feat = v[7].as_boolean();
        for i in 0..cust.len() {
            if cust.is_null(i) || e.is_null(i) || asz.is_null(i) || y.is_null(i) {
                continue;
            }
            if self.start.is_none() {
                self.start = Some((
                    cust.value(i),
                    s0.value(i),
                    u0.value(i),
                    m.value(i),
                    feat.value(i),
                ));
            }
            self.rows.push((e.value(i), asz.value(i), y.value(i)));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(col) = states.first() else {
            return Ok(());
        };
        for b in col.as_binary::<i64>().iter().flatten() {
            let (start, rows): (Option<Start>, Vec<(u64, u32, u8)>) =
                postcard::from_bytes(b).map_err(exec)?;
            if self.start.is_none() {
                self.start = start;
            }
            self.rows.extend(rows);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.blob()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some((customer, s, u, prior_mean, has_features)) = self.start else {
            return Ok(ScalarValue::LargeBinary(None));
        };
        // the local pass's event order (its sums in the same order)
        self.rows.sort_unstable_by_key(|r| r.0);
        let ev_as: Vec<u32> = self.rows.iter().map(|r| r.1).collect();
        let ev_y: Vec<u8> = self.rows.iter().map(|r| r.2).collect();
        let rows = CustomerRows {
            start: CustomerStart {
                customer,
                s,
                u,
                prior_mean,
                has_features,
            },
            ev_as: &ev_as,
            ev_y: &ev_y,
        };
        let out = self.ctx.customer(&rows).to_bytes().map_err(exec)?;
        Ok(ScalarValue::LargeBinary(Some(out)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * std::mem::size_of::<(u64, u32, u8)>()
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

//! One cell of an answer, typed for JSON and text output.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// A value of an answer's cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer (any width).
    Int(i64),
    /// An unsigned integer (any width).
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string; also every other type (dates, timestamps, lists, decimals) as Arrow
    /// displays it.
    Str(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// The value of `array` at `row`.
pub(crate) fn at(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let a = array.as_ref();
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(a.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Value::UInt(a.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Value::UInt(a.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Value::UInt(a.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(a.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Value::Float(a.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::Str(a.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::Str(a.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::Str(a.as_string_view().value(row).to_owned()),
        _ => {
            let opts = FormatOptions::default();
            match ArrayFormatter::try_new(a, &opts) {
                Ok(fmt) => Value::Str(fmt.value(row).to_string()),
                Err(e) => Value::Str(format!("<{}: {e}>", a.data_type())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array, StringArray, UInt64Array};

    use super::*;

    #[test]
    fn cells_keep_their_type_and_nulls() {
        let i: ArrayRef = Arc::new(Int64Array::from(vec![Some(-3), None]));
        assert_eq!(at(&i, 0), Value::Int(-3));
        assert_eq!(at(&i, 1), Value::Null);
        let u: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert_eq!(at(&u, 0), Value::UInt(u64::MAX));
        let s: ArrayRef = Arc::new(StringArray::from(vec!["a|b"]));
        assert_eq!(at(&s, 0), Value::Str("a|b".into()));
        // 2026-12-06 is day 20793 since the epoch.
        let d: ArrayRef = Arc::new(Date32Array::from(vec![20793]));
        assert_eq!(at(&d, 0), Value::Str("2026-12-06".into()));
    }
}

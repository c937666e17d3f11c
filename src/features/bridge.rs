//! The one bridge from Arrow record batches to ndarray matrices for the mining algorithms.
//!
//! Numeric columns (integers, floats, decimals, booleans as 0/1) become `f64` columns of an
//! `Array2`, rows in batch order. A missing column, a non-numeric column, a NULL or a NaN is an
//! error naming the source, the column and the row (1-based), never a silent zero: imputing is
//! a modelling decision the caller must make on purpose.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use ndarray::{Array2, ShapeBuilder};

use crate::error::{Error, Result};

/// Whether values of `dt` can be read as numbers.
pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

/// The names of `schema`'s numeric columns, in schema order.
pub fn numeric_columns(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| is_numeric(f.data_type()))
        .map(|f| f.name().clone())
        .collect()
}

/// `columns` of `batches` as an (rows × columns) matrix. `source` names the table or file in
/// errors.
pub fn matrix(
    schema: &Schema,
    batches: &[RecordBatch],
    columns: &[String],
    source: &str,
) -> Result<Array2<f64>> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Column-major, so each column is written contiguously.
    let mut out = Array2::<f64>::zeros((rows, columns.len()).f());
    for (j, name) in columns.iter().enumerate() {
        let Ok(idx) = schema.index_of(name) else {
            return Err(Error::Usage {
                arg: "--features".into(),
                message: format!(
                    "{source} has no column {name:?}; its numeric columns are: {}",
                    numeric_columns(schema).join(", ")
                ),
            });
        };
        let dt = schema.field(idx).data_type();
        if !is_numeric(dt) {
            return Err(Error::Usage {
                arg: "--features".into(),
                message: format!("{source}: column {name:?} is {dt}, not a number"),
            });
        }
        let mut row = 0usize;
        for b in batches {
            let values = cast(b.column(idx), &DataType::Float64)?;
            let values = values
                .as_any()
                .downcast_ref::<datafusion::arrow::array::PrimitiveArray<Float64Type>>()
                .ok_or_else(|| {
                    Error::Internal(format!("cast of {name} to Float64 gave another type"))
                })?;
            let mut col = out.column_mut(j);
            let dest = col
                .as_slice_mut()
                .expect("a column of a column-major matrix is contiguous");
            for i in 0..values.len() {
                let v = values.value(i);
                if values.is_null(i) || v.is_nan() {
                    return Err(Error::Input {
                        file: source.into(),
                        message: format!(
                            "row {}: column {name:?} is {}; clustering needs a number in every row \
                             (choose other --features or fill the column)",
                            row + i + 1,
                            if values.is_null(i) { "NULL" } else { "NaN" }
                        ),
                    });
                }
                dest[row + i] = v;
            }
            row += b.num_rows();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn numbers_become_a_matrix_and_bad_columns_are_named() {
        let b = batch();
        let m = matrix(&b.schema(), std::slice::from_ref(&b), &["a".into()], "t").unwrap();
        assert_eq!(m, ndarray::array![[1.0], [2.0]]);
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["b".into()], "t").unwrap_err();
        assert!(e.to_string().contains("row 2: column \"b\" is NULL"), "{e}");
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["s".into()], "t").unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["zz".into()], "t").unwrap_err();
        assert!(e.to_string().contains("numeric columns are: a, b"), "{e}");
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetGpt.Transforms;

/// <summary>What a stage's input column must hold.</summary>
internal enum InputKind
{
    /// <summary>Text (ML.NET <c>String</c>, <see cref="ReadOnlyMemory{T}"/> of char).</summary>
    Text,

    /// <summary>Token ids: a variable-length vector of Int32.</summary>
    TokenIds,
}

/// <summary>Input column checks whose errors name the stage, the column, and the expected and actual types.</summary>
internal static class SchemaChecks
{
    public static string Describe(InputKind kind) => kind switch
    {
        InputKind.Text => "String (text)",
        InputKind.TokenIds => "Vector<Int32> (token ids)",
        _ => kind.ToString(),
    };

    /// <summary>Checks <paramref name="schema"/> has a visible column <paramref name="name"/> of the expected kind.</summary>
    public static DataViewSchema.Column Check(DataViewSchema schema, string stage, string name, InputKind kind)
    {
        var column = schema.GetColumnOrNull(name);
        if (column is null)
        {
            var available = string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"));
            throw new ArgumentOutOfRangeException("inputSchema",
                $"{stage}: input column '{name}' was not found; expected a {Describe(kind)} column. The input has: {(available.Length == 0 ? "no columns" : available)}.");
        }
        if (!Accepts(column.Value.Type, kind))
            throw new ArgumentOutOfRangeException("inputSchema",
                $"{stage}: input column '{name}' has type {column.Value.Type}; expected {Describe(kind)}.");
        return column.Value;
    }

    /// <summary>The same check on an estimator's <see cref="SchemaShape"/>.</summary>
    public static void Check(SchemaShape shape, string stage, string name, InputKind kind)
    {
        if (!shape.TryFindColumn(name, out var column))
        {
            var available = string.Join(", ", shape.Select(c => $"'{c.Name}'"));
            throw new ArgumentOutOfRangeException("inputSchema",
                $"{stage}: input column '{name}' was not found; expected a {Describe(kind)} column. The input has: {(available.Length == 0 ? "no columns" : available)}.");
        }
        bool ok = kind switch
        {
            InputKind.Text => column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is TextDataViewType,
            InputKind.TokenIds => column.Kind != SchemaShape.Column.VectorKind.Scalar && column.ItemType == NumberDataViewType.Int32,
            _ => false,
        };
        if (!ok)
        {
            string actual = column.Kind == SchemaShape.Column.VectorKind.Scalar ? $"{column.ItemType}" : $"Vector<{column.ItemType}>";
            throw new ArgumentOutOfRangeException("inputSchema", $"{stage}: input column '{name}' has type {actual}; expected {Describe(kind)}.");
        }
    }

    private static bool Accepts(DataViewType type, InputKind kind) => kind switch
    {
        InputKind.Text => type is TextDataViewType,
        InputKind.TokenIds => type is VectorDataViewType vector && vector.ItemType == NumberDataViewType.Int32,
        _ => false,
    };

    private static DataViewType ColumnTypeOfRaw(Type raw) => raw == typeof(uint) ? NumberDataViewType.UInt32
        : raw == typeof(ulong) ? NumberDataViewType.UInt64 : raw == typeof(ushort) ? NumberDataViewType.UInt16 : NumberDataViewType.Byte;

    /// <summary>The <see cref="SchemaShape.Column"/> describing an output column of <paramref name="type"/>.</summary>
    public static SchemaShape.Column OutputShape(string name, DataViewType type, IReadOnlyList<(string Name, DataViewType Type)>? annotations = null)
    {
        SchemaShape? annotationShape = annotations is null ? null : new SchemaShape(annotations.Select(a => OutputShape(a.Name, a.Type)));
        // A key column is described by its underlying integer type and the key flag.
        static DataViewType Item(DataViewType t) => t is KeyDataViewType key ? ColumnTypeOfRaw(key.RawType) : t;
        if (type is VectorDataViewType vector)
            return new SchemaShape.Column(name, vector.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector,
                Item(vector.ItemType), vector.ItemType is KeyDataViewType, annotationShape);
        return new SchemaShape.Column(name, SchemaShape.Column.VectorKind.Scalar, Item(type), type is KeyDataViewType, annotationShape);
    }
}

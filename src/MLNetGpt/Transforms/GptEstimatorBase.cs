using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Transforms;

namespace MLNetGpt;

/// <summary>
/// The estimators of MLNetGpt's stages: nothing is trained. <see cref="Fit"/> creates the transformer
/// (opening the model where the stage needs one) and checks the input schema;
/// <see cref="GetOutputSchema"/> checks the input columns and adds the output columns.
/// </summary>
/// <typeparam name="TTransformer">The stage's transformer.</typeparam>
public abstract class GptEstimatorBase<TTransformer> : IEstimator<TTransformer> where TTransformer : GptTransformerBase
{
    private protected GptEstimatorBase(IHostEnvironment env)
    {
        ArgumentNullException.ThrowIfNull(env);
        Environment = env;
    }

    private protected IHostEnvironment Environment { get; }

    private protected abstract string StageName { get; }

    internal abstract IEnumerable<(string Name, InputKind Kind)> InputColumns { get; }

    internal abstract IEnumerable<(string Name, DataViewType Type)> OutputColumns { get; }

    private protected abstract TTransformer CreateTransformer();

    /// <summary>Creates the transformer for data of <paramref name="inputSchema"/> (a stage that adapts to its input overrides this).</summary>
    private protected virtual TTransformer CreateTransformer(DataViewSchema inputSchema) => CreateTransformer();

    /// <summary>Annotations an output column carries (their types), or null.</summary>
    internal virtual IReadOnlyList<(string Name, DataViewType Type)>? OutputAnnotations(string column) => null;

    /// <summary>Creates the transformer and checks that <paramref name="input"/> has the columns it needs.</summary>
    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var transformer = CreateTransformer(input.Schema);
        try
        {
            transformer.GetOutputSchema(input.Schema);
        }
        catch
        {
            transformer.Dispose();
            throw;
        }
        return transformer;
    }

    /// <summary>The schema after this stage; throws when an input column is missing or of the wrong type.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var (name, kind) in InputColumns) SchemaChecks.Check(inputSchema, StageName, name, kind);
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var (name, type) in OutputColumns) columns[name] = SchemaChecks.OutputShape(name, type, OutputAnnotations(name));
        return new SchemaShape(columns.Values);
    }
}

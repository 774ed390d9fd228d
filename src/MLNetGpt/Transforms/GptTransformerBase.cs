using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Transforms;

namespace MLNetGpt;

/// <summary>
/// The common behaviour of MLNetGpt's ML.NET stages: schema propagation with checked inputs, a lazy
/// <see cref="Transform"/> whose cursor reads source rows in batches and yields them in their
/// original order with every pass-through column intact, a row-to-row mapper for
/// <c>PredictionEngine</c>, and <c>mlContext.Model.Save</c>/<c>Load</c> support.
/// </summary>
/// <remarks>
/// A fitted stage may be used from several threads: each cursor and each prediction engine has its
/// own state, and the shared ONNX Runtime model allows concurrent runs. Dispose the transformer (or
/// the pipeline) to release the model when done; otherwise it is released at process exit.
/// </remarks>
public abstract class GptTransformerBase : ITransformer, IDisposable
{
    private protected GptTransformerBase(IHostEnvironment env, string registrationName)
    {
        ArgumentNullException.ThrowIfNull(env);
        Host = env.Register(registrationName);
    }

    private protected IHost Host { get; }

    /// <summary>The stage's name in error messages, e.g. <c>GenerateTokens</c>.</summary>
    private protected abstract string StageName { get; }

    internal abstract IReadOnlyList<(string Name, InputKind Kind)> InputColumns { get; }

    internal abstract IReadOnlyList<(string Name, DataViewType Type)> OutputColumns { get; }

    /// <summary>Annotations of an output column (key values, slot names), or null.</summary>
    internal virtual DataViewSchema.Annotations? OutputAnnotations(string column) => null;

    /// <summary>How many rows a cursor may read ahead of its consumer (about one batch).</summary>
    internal abstract int LookAhead { get; }

    internal abstract RowStreamMapper CreateMapper();

    private protected abstract void SaveModel(ModelSaveContext ctx);

    /// <summary>Always true: every stage maps rows one to one.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The input schema plus this stage's output columns; throws when an input column is missing or of the wrong type.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var (name, kind) in InputColumns) SchemaChecks.Check(inputSchema, StageName, name, kind);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (var (name, type) in OutputColumns) builder.AddColumn(name, type, OutputAnnotations(name));
        return builder.ToSchema();
    }

    /// <summary>A lazy view: nothing is read or generated until a cursor moves.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new StageDataView(this, input, GetOutputSchema(input.Schema));
    }

    /// <summary>A mapper that computes the outputs of one row at a time (used by <c>PredictionEngine</c>).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new StageRowMapper(this, inputSchema, GetOutputSchema(inputSchema));

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel();
        SaveModel(ctx);
    }

    internal void CheckAlive() => Host.CheckAlive();

    internal string Describe(long row, string column) => $"{StageName}: row {row} of column '{column}'";

    internal void Warn(string message)
    {
        using var channel = Host.Start(StageName);
        channel.Warning(message);
    }

    /// <summary>Releases the stage's share of its ONNX Runtime model.</summary>
    public virtual void Dispose() { }

    /// <summary>The MLContext's device settings, as <c>ApplyOnnxModel</c> reads them.</summary>
    private protected static GptDevice DeviceOf(IHostEnvironment env)
    {
        if (env is IHostEnvironmentInternal settings && settings.GpuDeviceId is int id)
            return GptDevice.Cuda(id, settings.FallbackToCpu);
        return GptDevice.Cpu;
    }

    private protected static int? SeedOf(IHostEnvironment env) => (env as IHostEnvironmentInternal)?.Seed;
}

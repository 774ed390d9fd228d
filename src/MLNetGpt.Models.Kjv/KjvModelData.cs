namespace MLNetGpt.Models.Kjv;

/// <summary>
/// Binds MLNetGpt to this assembly, whose manifest resources named <c>mlnetgpt-kjv/FILE</c> are the
/// files of the default model folder.
/// </summary>
internal static class KjvModelData
{
    public const string ResourcePrefix = "mlnetgpt-kjv/";
}

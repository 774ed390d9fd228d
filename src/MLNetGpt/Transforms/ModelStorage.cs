namespace MLNetGpt;

/// <summary>How a saved pipeline keeps the model folder one of its stages uses.</summary>
public enum ModelStorage
{
    /// <summary>
    /// Save the folder's full path (the default): the zip stays small, and loading needs the folder
    /// at that path (an error names the path when it is gone). Suits large models and shared disks.
    /// </summary>
    Reference,

    /// <summary>
    /// Copy the folder's files into the zip: the zip is self-contained and loading extracts them to
    /// a cache folder (under the system temp folder, reused while its content matches).
    /// </summary>
    Embed,
}

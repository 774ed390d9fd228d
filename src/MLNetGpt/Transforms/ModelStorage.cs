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
    /// Copy the files the model reads (<see cref="GptModelInfo.Files"/>: graphs, external data,
    /// configurations, tokenizer files, chat templates; for a tokenizer-only stage its tokenizer and
    /// configuration files) into the zip, and nothing else of the folder: the zip is self-contained.
    /// A file that is a link leading out of the folder is refused when the stage is created. Loading
    /// extracts the files to a private per-user cache (<c>MLNetGpt/models</c> under the local
    /// application data folder, or <c>MLNETGPT_CACHE</c>), where a copy is checked against the zip's
    /// content hash before each use and extracted again, with a warning, if it was changed.
    /// </summary>
    Embed,
}

using Xunit;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Third-party test data that lives beside the checkout in <c>../shared</c> (peer test models, the
/// chat-template corpus), never in the repository. CI always has it; elsewhere the tests that need
/// it are skipped with a reason that says where it was looked for.
/// </summary>
public static class SharedData
{
    /// <summary>The repository root: the first folder above the test binaries that holds MLNetGpt.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MLNetGpt.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("MLNetGpt.sln was not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The <c>shared</c> folder beside the repository (it may not exist).</summary>
    public static string Root => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    /// <summary>The full path of <paramref name="relative"/> under <see cref="Root"/>.</summary>
    public static string PathOf(string relative) => Path.Combine(Root, relative);

    /// <summary>Whether <paramref name="relative"/> (a file or a folder) exists under <see cref="Root"/>.</summary>
    public static bool Exists(string relative) => File.Exists(PathOf(relative)) || Directory.Exists(PathOf(relative));

    internal static string? SkipReason(string relative) => Exists(relative) ? null
        : $"needs third-party test data at '{PathOf(relative)}' (the shared folder beside the checkout), which is not there";
}

/// <summary>A fact that is skipped, with the reason, when its data under <c>../shared</c> is absent.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    /// <summary>Skips unless <paramref name="relative"/> exists under <c>../shared</c>.</summary>
    public SharedDataFactAttribute(string relative) => Skip = SharedData.SkipReason(relative);
}

/// <summary>A theory that is skipped, with the reason, when its data under <c>../shared</c> is absent.</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips unless <paramref name="relative"/> exists under <c>../shared</c>.</summary>
    public SharedDataTheoryAttribute(string relative) => Skip = SharedData.SkipReason(relative);
}

using Xunit;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>A fact about symbolic links, file modes or other Unix behaviour: skipped, with the reason, off Linux.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "needs Linux (symbolic links made without privileges, Unix file modes); this machine runs " + System.Runtime.InteropServices.RuntimeInformation.OSDescription;
    }
}

/// <summary>A theory about Unix behaviour: skipped, with the reason, off Linux.</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "needs Linux (symbolic links made without privileges, Unix file modes); this machine runs " + System.Runtime.InteropServices.RuntimeInformation.OSDescription;
    }
}

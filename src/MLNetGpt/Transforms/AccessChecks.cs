// ML.NET's persistence API (LoadableClass, ModelSaveContext, ModelLoadContext, VersionInfo,
// SchemaShape.Column's constructor, IHostEnvironmentInternal) is internal to ML.NET. This assembly
// compiles against publicized copies of ML.NET's assemblies (build/Publicize.targets), and these
// attributes let the runtime accept the access. This pins MLNetGpt to the ML.NET version it was
// built against (see the package's exact dependency and docs/persistence.md).
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.DataView")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Honoured by the .NET runtime: members of the named assembly are accessible to this one.</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute : Attribute
    {
        public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

        public string AssemblyName { get; }
    }
}

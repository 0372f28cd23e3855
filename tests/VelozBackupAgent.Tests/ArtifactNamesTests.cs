using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Tests;

public class ArtifactNamesTests
{
    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("x.dump.sha256")]
    [InlineData("")]
    [InlineData("spaces are bad")]
    [InlineData("..")]
    public void Refuses_names_that_are_not_plain_file_names(string name)
    {
        var validate = () => ArtifactNames.ValidateName(name);
        validate.Should().Throw<ArgumentException>();
    }

    [Theory]
    [InlineData("Wal")]
    [InlineData("../wal")]
    [InlineData("")]
    public void Refuses_kinds_that_are_not_plain_folder_names(string kind)
    {
        var validate = () => ArtifactNames.ValidateKind(kind);
        validate.Should().Throw<ArgumentException>();
    }

    [Theory]
    [InlineData("orders_0000000000000001.wal")]
    [InlineData("secrets_20260214_120000.tar.gz.gpg")]
    [InlineData("veloz_20260214_120000-2.dump")]
    public void Accepts_the_names_the_agent_makes(string name)
    {
        ArtifactNames.ValidateName(name);
    }
}

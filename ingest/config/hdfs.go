package config

import (
	"fmt"
	"strings"
	"time"
)

// HDFS is how the daemon reaches HDFS, for hdfs:// warehouses and table
// locations.
type HDFS struct {
	// NameNodes are host:port of the cluster's NameNodes; list every one
	// with HA. Empty: the host:port of each hdfs:// URL (or the Hadoop
	// configuration's).
	NameNodes []string `yaml:"namenodes"`
	// HadoopConfDir holds core-site.xml and hdfs-site.xml to read NameNodes
	// (HA included), Kerberos and data-transfer protection from; the keys
	// here win.
	HadoopConfDir string `yaml:"hadoop_conf_dir"`
	// User is the HDFS user without Kerberos (default $HADOOP_USER_NAME,
	// else the OS user).
	User string `yaml:"user"`
	// Kerberos authenticates the daemon.
	Kerberos *Kerberos `yaml:"kerberos"`
	// DataTransferProtection is the cluster's dfs.data.transfer.protection:
	// "", "authentication", "integrity" or "privacy".
	DataTransferProtection string `yaml:"data_transfer_protection"`
	// UseDatanodeHostname dials DataNodes by host name rather than IP.
	UseDatanodeHostname bool `yaml:"use_datanode_hostname"`
	// Connections to the NameNode per cluster (default 4).
	Connections int `yaml:"connections"`
	// Replication of new files (default: the cluster's).
	Replication int `yaml:"replication"`
	// BlockSize of new files (default: the cluster's).
	BlockSize ByteSize `yaml:"block_size"`
	// CloseTimeout bounds how long closing a file waits for its last block
	// to be reported replicated (default 2m).
	CloseTimeout Duration `yaml:"close_timeout"`
}

// Kerberos is the daemon's Kerberos identity.
type Kerberos struct {
	// Principal is user[/host]@REALM. Required.
	Principal string `yaml:"principal"`
	// Keytab file; without it the credential cache is used.
	Keytab string `yaml:"keytab"`
	// CCache is the credential cache (default $KRB5CCNAME or /tmp/krb5cc_<uid>).
	CCache string `yaml:"ccache"`
	// Krb5Conf is the Kerberos configuration (default /etc/krb5.conf).
	Krb5Conf string `yaml:"krb5_conf"`
	// ServicePrincipal is the NameNodes' principal without realm (default
	// nn/_HOST).
	ServicePrincipal string `yaml:"service_principal"`
}

func (h *HDFS) applyDefaults() {
	if h.Connections == 0 {
		h.Connections = 4
	}
	if h.CloseTimeout == 0 {
		h.CloseTimeout = Duration(2 * time.Minute)
	}
	if k := h.Kerberos; k != nil {
		if k.Krb5Conf == "" {
			k.Krb5Conf = "/etc/krb5.conf"
		}
		if k.ServicePrincipal == "" {
			k.ServicePrincipal = "nn/_HOST"
		}
	}
}

func (h *HDFS) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("hdfs.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, nn := range h.NameNodes {
		if !strings.Contains(nn, ":") {
			bad(fmt.Sprintf("namenodes[%d]", i), "%q is not host:port", nn)
		}
	}
	switch h.DataTransferProtection {
	case "", "authentication", "integrity", "privacy":
	default:
		bad("data_transfer_protection", "%q is not authentication, integrity or privacy", h.DataTransferProtection)
	}
	if h.Connections < 1 || h.Connections > 64 {
		bad("connections", "%d is outside 1..64", h.Connections)
	}
	if h.Replication < 0 || h.Replication > 32 {
		bad("replication", "%d is outside 1..32", h.Replication)
	}
	if h.BlockSize != 0 && (h.BlockSize < 1<<20 || h.BlockSize%512 != 0) {
		bad("block_size", "%s must be at least 1MiB and a multiple of 512", h.BlockSize)
	}
	if h.CloseTimeout <= 0 {
		bad("close_timeout", "%s must be positive", h.CloseTimeout)
	}
	if k := h.Kerberos; k != nil {
		if user, realm, ok := strings.Cut(k.Principal, "@"); !ok || user == "" || realm == "" {
			bad("kerberos.principal", "%q is not user[/host]@REALM", k.Principal)
		}
	}
	return errs
}

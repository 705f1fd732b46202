"""Parsers for what the bonding triage commands print, one module per data source.

Each turns a command's text into typed objects and raises :class:`ParseError` (with the line)
on text that is not that command's output. They never run anything.
"""

from .errors import ParseError
from .ethtool import EthtoolInfo, parse_ethtool
from .ip_link import BondDetails, IpLink, parse_ip_details, parse_ip_link
from .nmcli import NmcliConnection, NmcliListRow, parse_nmcli, parse_nmcli_list
from .proc_bonding import (
    Ad8023Info,
    AggregatorInfo,
    LacpPduDetails,
    LacpPortState,
    ProcBonding,
    ProcSlave,
    parse_proc_bonding,
)
from .sysfs import parse_bonding_masters, parse_sysfs_slaves

__all__ = [
    "Ad8023Info",
    "AggregatorInfo",
    "BondDetails",
    "EthtoolInfo",
    "IpLink",
    "LacpPduDetails",
    "LacpPortState",
    "NmcliConnection",
    "NmcliListRow",
    "ParseError",
    "ProcBonding",
    "ProcSlave",
    "parse_bonding_masters",
    "parse_ethtool",
    "parse_ip_details",
    "parse_ip_link",
    "parse_nmcli",
    "parse_nmcli_list",
    "parse_proc_bonding",
    "parse_sysfs_slaves",
]

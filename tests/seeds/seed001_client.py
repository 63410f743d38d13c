# Seed 001_444414cdf44704f4.txt, client.py (talks to server.py, which
# answers one recv upper-cased; ported as examples/upper_server.rs).
# Changed: the test replaces the port 6999 with the server's. Nothing else.
# 新建client.py,输入以下命令,作为客户端请求文件
import socket
c = socket.socket(socket.AF_INET,socket.SOCK_STREAM)
c.connect(('localhost',6999)) #
msg = '欢迎新同学!'
c.send(msg.encode('utf-8')) # 发送一条信息,将字符串转换为字节流
data = c.recv(1024) # 接收信息,大小为1024字节
print('recv:',data.decode()) # 输出接收信息
c.close() # 关闭
